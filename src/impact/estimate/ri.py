"""Randomization inference for programme adoption: permute adoption dates across units.

Notes
-----
Fisher's sharp null (no unit's exit rate is moved by the programme in any month), tested
by re-assigning the observed adoption schedule to units at random (e.g. Young 2019, *QJE*
134(2); MacKinnon and Webb 2020, *J. Econometrics* 218(2), for few treated clusters).
The multiset of unit-level adoption months, *including* "never" (NaN) for the units that
never adopted, is kept and shuffled over units, so a never-adopter may receive a date and
an adopter may become never-treated; each permutation is one draw from the assignment
mechanism "the dates are exchangeable across units". The estimator is recomputed on each
permuted frame, and

    p = (1 + #{b : |ATT_b| >= |ATT_obs|}) / (1 + n_perm),

the share among the n_perm permutations plus the observed assignment (which is one of
the possible assignments; counting it keeps the test exact at level alpha, Phipson and
Smyth 2010). Valid whatever the number of clusters; it tests the sharp null, not the
weak null of a zero average effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["RIResult", "permute_adoption", "randomization_inference"]


@dataclass(frozen=True)
class RIResult:
    """att_obs: estimate on the data; att_perm (n_perm,): estimates on permuted dates
    (NaN where the estimator failed, excluded from p); p_value as in the module notes."""

    att_obs: float
    p_value: float
    att_perm: np.ndarray
    n_perm: int
    n_units: int
    n_failed: int


def permute_adoption(frame: pd.DataFrame, rng: np.random.Generator, unit: str = "unit",
                     gname: str = "g") -> pd.DataFrame:
    """A copy of ``frame`` whose unit-level ``gname`` (NaN = never) is shuffled over units."""
    per_unit = frame.groupby(unit, sort=True)[gname].first()
    shuffled = pd.Series(rng.permutation(per_unit.to_numpy()), index=per_unit.index)
    out = frame.copy()
    out[gname] = out[unit].map(shuffled).astype("float64")
    return out


def randomization_inference(cells_frame: pd.DataFrame,
                            estimator_fn: Callable[[pd.DataFrame], float], *,
                            n_perm: int = 999, seed: int = 0, unit: str | None = None,
                            gname: str = "g") -> RIResult:
    """Permutation p-value of the adoption ATT.

    Parameters
    ----------
    cells_frame : DataFrame
        Unit x month cells with one adoption month per unit in ``gname`` (NaN = never), as
        ``adoption.adoption_cells`` returns. Any treatment indicator must be derived from
        ``gname`` by ``estimator_fn`` (a stale ``adopted`` column is not permuted).
    estimator_fn : callable
        frame -> ATT (float). Called once on the data and once per permutation.
    n_perm : int
        Number of permutations (drawn with replacement from the set of all permutations).
    seed : int
        Seed of ``np.random.default_rng``.
    unit : str, optional
        The unit column; default ``unit`` if present, else ``municipality``.

    Raises
    ------
    ValueError
        A unit with more than one adoption month, no adopting unit, or n_perm < 1.
    """
    if n_perm < 1:
        raise ValueError(f"n_perm={n_perm!r} must be a positive integer")
    unit = unit or ("unit" if "unit" in cells_frame else "municipality")
    nuniq = cells_frame.groupby(unit)[gname].nunique(dropna=False)
    if (nuniq > 1).any():
        bad = nuniq.index[nuniq > 1][0]
        raise ValueError(f"unit {bad!r} has more than one adoption month in {gname!r}; "
                         "the unit must be the level at which adoption is assigned")
    if cells_frame[gname].notna().sum() == 0:
        raise ValueError(f"no unit adopts ({gname!r} is all missing); nothing to test")
    att_obs = float(estimator_fn(cells_frame))
    rng = np.random.default_rng(seed)
    perm = np.full(n_perm, np.nan)
    for b in range(n_perm):
        try:
            perm[b] = float(estimator_fn(permute_adoption(cells_frame, rng, unit, gname)))
        except (ValueError, np.linalg.LinAlgError):
            perm[b] = np.nan  # e.g. no untreated cell left for a permuted schedule
    ok = np.isfinite(perm)
    n_ok = int(ok.sum())
    hits = int(np.sum(np.abs(perm[ok]) >= abs(att_obs) * (1 - 1e-12)))
    p = (1 + hits) / (1 + n_ok)
    return RIResult(att_obs, float(p), perm, n_perm, int(len(nuniq)), n_perm - n_ok)
