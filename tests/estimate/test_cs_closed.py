"""Closed-form Callaway-Sant'Anna (``cs_closed``) against moderndid and a known truth.

moderndid (a port of R ``did``, validated against R in ``test_did_reference``) is the
reference: every aggregated number of ``callaway_santanna`` must equal what
``moderndid.att_gt(est_method="reg", base_period="varying")`` + ``aggte`` give on the same
panel, including its preparation (cohorts after the last period, units treated in the
first period, no never-treated units, periods that are not consecutive integers).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from impact.estimate.cs_closed import callaway_santanna
from impact.estimate.did import DidInputError


def _panel(seed: int, n: int = 60, periods: int = 12, never: bool = True,
           gaps: bool = False, noise: float = 1.0) -> pd.DataFrame:
    """Long panel: unit effects, a common trend, an effect 1 + 0.2 e from adoption on.

    Cohorts (period positions): 1 (treated from the first period: dropped), 3, 5, 6, 9,
    11 and, with ``never``, 0 (never treated, the first 6 units) and one after the last
    period (never treated too). ``gaps``: periods 2001.. with steps of 1 or 2."""
    rng = np.random.default_rng(seed)
    choice = [0, 1, 3, 5, 6, 9, periods + 4] if never else [1, 3, 5, 6, 9, 11]
    pos = rng.choice(choice, n)
    if never:
        pos[:6] = 0
    t = (np.cumsum(rng.integers(1, 3, periods)) + 2000 if gaps
         else np.arange(1, periods + 1)).astype(float)
    g = np.array([0.0 if p == 0 else t[-1] + 5 if p > periods else t[p - 1] for p in pos])
    unit = rng.normal(size=n)
    rows = []
    for i in range(n):
        e = np.arange(periods) - np.searchsorted(t, g[i])
        eff = np.where((g[i] > 0) & (t >= g[i]), 1 + 0.2 * e, 0.0)
        y = unit[i] + 0.1 * np.arange(periods) + eff + noise * rng.normal(size=periods)
        rows.append(pd.DataFrame({"uid": i + 1, "tt": t, "gg": g[i], "y": y}))
    return pd.concat(rows, ignore_index=True)


def _moderndid(data: pd.DataFrame, control: str) -> dict:
    moderndid = pytest.importorskip("moderndid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp = moderndid.att_gt(data, yname="y", tname="tt", idname="uid", gname="gg",
                              alp=0.05, cband=False, boot=False, est_method="reg",
                              control_group=control, anticipation=0, base_period="varying")
        return {a: moderndid.aggte(mp, type=a, cband=False, alp=0.05)
                for a in ("simple", "dynamic")}


def _ours(data: pd.DataFrame, control: str) -> dict:
    return callaway_santanna(data, yname="y", tname="tt", idname="uid", gname="gg",
                             control_group=control)


CASES = [  # (seed, never-treated units, periods with gaps, control group)
    (1, True, False, "nevertreated"), (1, True, False, "notyettreated"),
    (2, True, True, "nevertreated"), (2, True, True, "notyettreated"),
    (3, False, False, "notyettreated"), (4, False, True, "notyettreated"),
]


@pytest.mark.parametrize("seed,never,gaps,control", CASES)
def test_equals_moderndid(seed, never, gaps, control):
    data = _panel(seed, never=never, gaps=gaps)
    ref, ours = _moderndid(data, control), _ours(data, control)
    for agg in ("simple", "dynamic"):
        r, o = ref[agg], ours[agg]
        np.testing.assert_allclose(o.overall_att, r.overall_att, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(o.overall_se, r.overall_se, rtol=1e-9)
        if agg == "dynamic":
            np.testing.assert_array_equal(o.event_times, np.asarray(r.event_times, float))
            np.testing.assert_allclose(o.att_by_event, r.att_by_event, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(o.se_by_event, r.se_by_event, rtol=1e-9)


def test_unbalanced_units_are_dropped_as_moderndid_drops_them():
    data = _panel(5)
    data = data.drop(index=data.index[(data["uid"] % 7 == 0) & (data["tt"] == 4)])
    for control in ("nevertreated", "notyettreated"):
        ref, ours = _moderndid(data, control), _ours(data, control)
        np.testing.assert_allclose(ours["dynamic"].att_by_event, ref["dynamic"].att_by_event,
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours["simple"].overall_se, ref["simple"].overall_se,
                                   rtol=1e-9)


def test_recovers_a_known_effect():
    """Parallel trends hold; the effect is 1 + 0.2 e at event time e >= 0 and 0 before."""
    data = _panel(6, n=3000, noise=0.5)
    for control in ("nevertreated", "notyettreated"):
        dyn = _ours(data, control)["dynamic"]
        truth = np.where(dyn.event_times >= 0, 1 + 0.2 * dyn.event_times, 0.0)
        z = (dyn.att_by_event - truth) / dyn.se_by_event
        assert np.all(np.abs(z) < 4.5), (control, z)
        assert np.all(dyn.se_by_event < 0.2)
        overall = truth[dyn.event_times >= 0].mean()
        assert abs(dyn.overall_att - overall) < 4 * dyn.overall_se


def test_refusals():
    data = _panel(7)
    late = data["gg"] > data["tt"].max()                      # never treated as well
    few = data[((data["gg"] != 0) & ~late) | (data["uid"] <= 3)]  # 3 never-treated left
    with pytest.raises(DidInputError, match="too small"):
        _ours(few, "nevertreated")
    with pytest.raises(ValueError):                            # moderndid refuses it too
        _moderndid(few, "nevertreated")
    with pytest.raises(DidInputError, match="never-treated"):
        _ours(_panel(8, never=False), "nevertreated")
    with pytest.raises(DidInputError, match="control_group"):
        _ours(data, "everyone")
