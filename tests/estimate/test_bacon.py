"""``impact.estimate.bacon.bacon_decomposition``: the exact Goodman-Bacon identities.

References
----------
TWFE  pyfixest ``feols("y ~ D | id + t")`` (optionally ``weights=``), an independent
      implementation of the coefficient being decomposed.
2x2   Each comparison's estimate is by definition the TWFE coefficient on its own
      subsample (the two groups, over the comparison's window); checked by running
      pyfixest on every subsample.
Thm1  Goodman-Bacon (2021, Theorem 1): the weights are non-negative and sum to one, and
      sum(weight * estimate) equals the TWFE coefficient.

Tolerances
----------
``EXACT = 1e-10`` (absolute, outcomes of order 1): every comparison is an identity in
floating point. On a balanced panel the two-way demeaning is exact after one sweep, so
pyfixest's iterative demeaning adds nothing measurable (4e-16 seen on mpdta).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from impact.estimate.bacon import COMPARISON_TYPES, bacon_decomposition
from impact.estimate.did import DidInputError

EXACT = 1e-10
ROLES = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat")
SIM = dict(yname="y", tname="t", idname="id", gname="g")


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    return pd.read_csv(Path(__file__).parent / "data" / "mpdta.csv")


def _with_d(df: pd.DataFrame, tname: str, gname: str) -> pd.DataFrame:
    out = df.copy()
    out["D"] = ((out[gname] > 0) & (out[tname] >= out[gname])).astype(float)
    return out


def _twfe_ref(df, yname, tname, idname, gname, weights=None) -> float:
    d = _with_d(df, tname, gname).rename(columns={yname: "y_", tname: "t_", idname: "i_"})
    fit = pf.feols("y_ ~ D | i_ + t_", data=d, weights=weights)
    return float(fit.coef()["D"])


def _panel(seed: int, *, never: bool = True, weights: bool = False) -> pd.DataFrame:
    """Random balanced staggered panel: heterogeneous, dynamic effects, odd timing groups
    (always treated; with ``never``, also treated after the last period, which is never
    treated within the sample)."""
    rng = np.random.default_rng(seed)
    n, periods = int(rng.integers(30, 80)), int(rng.integers(5, 12))
    first = 2000
    choices = list(rng.choice(np.arange(first + 1, first + periods), size=3, replace=False))
    choices += [first] + ([0, first + periods + 3] if never else [])
    g = rng.choice(choices, size=n)
    t = np.arange(first, first + periods)
    df = pd.DataFrame({"id": np.repeat(np.arange(n), periods), "t": np.tile(t, n),
                       "g": np.repeat(g, periods)})
    treated = (df["g"] > 0) & (df["t"] >= df["g"])
    effect = np.where(treated, (df["t"] - df["g"] + 1) * (df["g"] % 7) / 3, 0.0)
    df["y"] = (np.repeat(rng.normal(size=n), periods) + np.tile(rng.normal(size=periods), n)
               + effect + rng.normal(size=len(df)))
    if weights:
        df["w"] = np.repeat(rng.uniform(0.5, 3.0, size=n), periods)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # row order free


def _subsample_2x2(df, r, yname, tname, idname, gname, weights=None) -> float:
    """TWFE on the comparison's own subsample (the brute-force 2x2)."""
    tmax = df[tname].max()
    grp = df[gname].where((df[gname] > 0) & (df[gname] <= tmax), 0)
    treated = float(r["treated"])
    if r["control"] == "never":
        sub = df[(grp == treated) | (grp == 0)]
    else:
        control = float(r["control"])
        sub = df[(grp == treated) | (grp == control)]
        if r["type"] == "earlier_vs_later":
            sub = sub[sub[tname] < control]
        else:
            sub = sub[sub[tname] >= control]
            sub = sub.assign(**{gname: np.where(sub[gname] == control, 0, sub[gname])})
    return _twfe_ref(sub, yname, tname, idname, gname, weights)


def test_mpdta_identity_and_weights(mpdta):
    res = bacon_decomposition(mpdta, **ROLES)
    tab = res.tidy()
    ref = _twfe_ref(mpdta, **ROLES)
    assert abs(res.twfe - ref) < EXACT
    assert abs((tab["weight"] * tab["estimate"]).sum() - ref) < EXACT
    assert abs(tab["weight"].sum() - 1) < EXACT
    assert (tab["weight"] >= 0).all()
    # mpdta: 3 cohorts + never treated: 3 vs-never + 3 pairs x 2 directions
    assert len(tab) == 9 and set(tab["type"]) == set(COMPARISON_TYPES)
    summ = res.summary()
    assert list(summ.columns) == ["type", "weight", "estimate", "n_comparisons"]
    assert abs((summ["weight"] * summ["estimate"]).sum() - ref) < EXACT
    assert abs(summ["weight"].sum() - 1) < EXACT


def test_mpdta_each_2x2_is_twfe_on_its_subsample(mpdta):
    tab = bacon_decomposition(mpdta, **ROLES).tidy()
    for _, r in tab.iterrows():
        assert abs(r["estimate"] - _subsample_2x2(mpdta, r, **ROLES)) < EXACT, dict(r)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("never", [True, False])
def test_random_panels_identity(seed, never):
    df = _panel(seed, never=never)
    before = df.copy()
    res = bacon_decomposition(df, **SIM)
    pd.testing.assert_frame_equal(df, before)  # input not mutated
    tab = res.tidy()
    ref = _twfe_ref(df, **SIM)
    assert abs(res.twfe - ref) < EXACT
    assert abs((tab["weight"] * tab["estimate"]).sum() - ref) < EXACT
    assert abs(tab["weight"].sum() - 1) < EXACT and (tab["weight"] >= -EXACT).all()
    assert ("treated_vs_never" in set(tab["type"])) == never
    for _, r in tab.iterrows():
        assert abs(r["estimate"] - _subsample_2x2(df, r, **SIM)) < EXACT, dict(r)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_weighted_identity(seed):
    df = _panel(seed, weights=True)
    res = bacon_decomposition(df, **SIM, weightsname="w")
    tab = res.tidy()
    ref = _twfe_ref(df, **SIM, weights="w")
    assert abs(res.twfe - ref) < EXACT
    assert abs((tab["weight"] * tab["estimate"]).sum() - ref) < EXACT
    assert abs(tab["weight"].sum() - 1) < EXACT
    for _, r in tab.iterrows():
        assert abs(r["estimate"] - _subsample_2x2(df, r, **SIM, weights="w")) < EXACT


def test_unbalanced_panel_is_rejected(mpdta):
    with pytest.raises(DidInputError, match="not balanced"):
        bacon_decomposition(mpdta.iloc[1:], **ROLES)


def test_weights_varying_within_unit_are_rejected():
    df = _panel(3, weights=True)
    df.loc[0, "w"] = df.loc[0, "w"] + 1
    with pytest.raises(DidInputError, match="constant within"):
        bacon_decomposition(df, **SIM, weightsname="w")


def test_no_treatment_variation_is_rejected():
    df = _panel(4)
    df["g"] = 0
    with pytest.raises(DidInputError, match="no treated units"):
        bacon_decomposition(df, **SIM)
