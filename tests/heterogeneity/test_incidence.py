"""Competing-risks cumulative incidence by group: counts, estimator, SEs, disclosure, figure.

Seeds are fixed once, before any result was seen, and never changed to make a test pass.
"""

from __future__ import annotations

import duckdb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from matplotlib.figure import Figure

from impact.heterogeneity.incidence import (
    COUNT_COLUMNS, INCIDENCE_COLUMNS, IncidenceInputError, cumulative_incidence,
    incidence_counts, suppress_incidence,
)
from impact.heterogeneity.incidence_figure import incidence_figure, save_png_svg
from impact.report.figures import set_theme

SEED = 740_215
CAUSES = ("work", "education", "other")
#: monthly cause-specific exit probabilities (work, education, other) per group
PROBS = {"A": (0.05, 0.010, 0.020), "B": (0.03, 0.020, 0.015), "C": (0.08, 0.005, 0.030)}


def simulate_spells(rng, n: int, probs=PROBS, missing_share=0.04, trunc_share=0.3,
                    max_entry=18, max_follow=40, client_share=0.8) -> pd.DataFrame:
    """Spells with constant monthly cause-specific probabilities.

    A spell is observed from duration ``entry`` (0, or 1..max_entry when left-truncated:
    with constant hazards surviving to ``entry`` does not change what follows) up to
    ``last`` = its exit month or its censoring month ``entry + U{0..max_follow}``.
    ``cause`` is 0 (censored) or 1/2/3 (work/education/other). Clients can have several
    spells. A share of spells has a missing group (hazards of the first group).
    """
    names = list(probs)
    group = np.array(names, dtype=object)[rng.integers(0, len(names), n)]
    p = np.array([probs[g] for g in group])
    h = p.sum(axis=1)
    entry = np.where(rng.random(n) < trunc_share, rng.integers(1, max_entry + 1, n), 0)
    censor = entry + rng.integers(0, max_follow + 1, n)
    exit_at = entry + rng.geometric(h) - 1  # first month with an exit, from entry on
    u = rng.random(n) * h
    cause = 1 + (u >= p[:, 0]).astype(int) + (u >= p[:, 0] + p[:, 1]).astype(int)
    exited = exit_at <= censor
    group[rng.random(n) < missing_share] = None
    return pd.DataFrame({
        "spell_id": np.arange(n), "client_id": rng.integers(0, int(client_share * n), n),
        "grp": group, "entry": entry, "last": np.where(exited, exit_at, censor),
        "cause": np.where(exited, cause, 0),
    })


def person_months(spells: pd.DataFrame) -> pd.DataFrame:
    """One row per spell and month at risk (the panel's layout)."""
    length = (spells["last"] - spells["entry"] + 1).to_numpy()
    rows = np.repeat(np.arange(len(spells)), length)
    start = np.repeat(np.cumsum(length) - length, length)
    duration = spells["entry"].to_numpy()[rows] + np.arange(len(rows)) - start
    s = spells.iloc[rows].reset_index(drop=True)
    end = duration == s["last"].to_numpy()
    cause = s["cause"].to_numpy()
    return pd.DataFrame({
        "spell_id": s["spell_id"], "client_id": "c" + s["client_id"].astype(str),
        "grp": s["grp"], "duration": duration.astype("int64"),
        "left_truncated": (s["entry"] > 0).astype("int8"),
        "exit_any": (end & (cause > 0)).astype("int8"),
        "exit_work": (end & (cause == 1)).astype("int8"),
        "exit_education": (end & (cause == 2)).astype("int8"),
    })


def counts_from_spells(spells: pd.DataFrame, max_duration: int) -> pd.DataFrame:
    """Counts table of one group straight from spells (for the many replications)."""
    d = np.arange(max_duration + 1)
    entry, last, cause = (spells[c].to_numpy() for c in ("entry", "last", "cause"))
    enter = np.bincount(np.minimum(entry, max_duration + 1), minlength=max_duration + 2)
    leave = np.bincount(np.minimum(last + 1, max_duration + 1), minlength=max_duration + 2)
    at_risk = np.cumsum(enter - leave)[: max_duration + 1]
    ex = {k: np.bincount(last[(cause == k) & (last <= max_duration)], minlength=max_duration + 1)
          for k in (1, 2, 3)}
    return pd.DataFrame({
        "group": "all", "duration": d, "at_risk": at_risk, "clients": at_risk,
        "exits_work": ex[1], "exits_education": ex[2], "exits_any": ex[1] + ex[2] + ex[3],
        "group_clients": len(spells),
    })


def true_cif(p, d):
    """Closed form with constant probabilities: h_k / h (1 - (1 - h)^(d + 1))."""
    h = sum(p)
    return {**{k: pk / h * (1 - (1 - h) ** (d + 1)) for k, pk in zip(CAUSES, p)},
            "any": 1 - (1 - h) ** (d + 1)}


@pytest.fixture(scope="module")
def spells():
    return simulate_spells(np.random.default_rng(SEED), 4000)


@pytest.fixture(scope="module")
def pm(spells):
    return person_months(spells)


# ----------------------------------------------------------------------------- exactness


def test_matches_brute_force_from_individual_spells(spells, pm):
    max_d = 45
    counts = incidence_counts(pm, "grp", max_d)
    cif = cumulative_incidence(counts)
    assert list(counts.columns) == list(COUNT_COLUMNS)
    assert list(cif.columns) == list(INCIDENCE_COLUMNS)
    assert set(cif["group"]) == {"A", "B", "C", "missing"}
    assert (counts["duration"] > 0).any() and (pm["left_truncated"] == 1).any()
    for label in ("A", "B", "C", "missing"):
        sp = spells[spells["grp"].isna()] if label == "missing" else spells[spells["grp"] == label]
        surv, cum = 1.0, dict.fromkeys(CAUSES, 0.0)
        for d in range(max_d + 1):
            risk = sp[(sp["entry"] <= d) & (sp["last"] >= d)]
            n = len(risk)
            row = cif[(cif["group"] == label) & (cif["duration"] == d)].set_index("outcome")
            if n == 0:
                assert row.empty
                continue
            ended = risk[risk["last"] == d]
            for k, cause in zip(CAUSES, (1, 2, 3)):
                cum[k] += surv * (ended["cause"] == cause).sum() / n
            surv *= 1 - (ended["cause"] > 0).sum() / n
            assert row.loc["work", "at_risk"] == n
            assert row.loc["work", "clients"] == risk["client_id"].nunique()
            for k in CAUSES:
                assert row.loc[k, "cif"] == pytest.approx(cum[k], abs=1e-12)
            assert row.loc["any", "cif"] == pytest.approx(1 - surv, abs=1e-12)
        assert counts.loc[counts["group"] == label, "group_clients"].iloc[0] == \
            sp.loc[sp["entry"] <= max_d, "client_id"].nunique()


def test_outcomes_add_up_to_one_minus_survival(pm):
    counts = incidence_counts(pm, "grp", 40)
    cif = cumulative_incidence(counts)
    for group, c in counts.groupby("group"):
        surv = np.cumprod(1 - c["exits_any"] / c["at_risk"]).to_numpy()
        wide = cif[cif["group"] == group].pivot(index="duration", columns="outcome", values="cif")
        total = (wide["work"] + wide["education"] + wide["other"]).to_numpy()
        np.testing.assert_allclose(total, 1 - surv, rtol=0, atol=1e-12)
        np.testing.assert_allclose(wide["any"].to_numpy(), 1 - surv, rtol=0, atol=1e-12)


def test_delta_method_variance_matches_numerical_gradient():
    """SE^2 = sum_d g_d' Cov_d g_d with g from finite differences of the estimator itself."""
    rng = np.random.default_rng(SEED + 1)
    n = rng.integers(40, 400, 9).astype(float)
    e = np.stack([rng.binomial(n.astype(int), q) for q in (0.07, 0.02, 0.04)], axis=1)
    counts = pd.DataFrame({"group": "g", "duration": np.arange(9), "at_risk": n.astype(int),
                           "clients": n.astype(int), "exits_work": e[:, 0],
                           "exits_education": e[:, 1], "exits_any": e.sum(axis=1)})
    out = cumulative_incidence(counts)
    hz = e / n[:, None]

    def cif(h, k, horizon):
        f, s = 0.0, 1.0
        for d in range(horizon + 1):
            f += s * (h[d].sum() if k == 3 else h[d, k])
            s *= 1 - h[d].sum()
        return f

    for k, name in enumerate((*CAUSES, "any")):
        for horizon in (0, 4, 8):
            var = 0.0
            for d in range(horizon + 1):
                g = np.empty(3)
                for j in range(3):
                    up, dn = hz.copy(), hz.copy()
                    up[d, j] += 1e-6
                    dn[d, j] -= 1e-6
                    g[j] = (cif(up, k, horizon) - cif(dn, k, horizon)) / 2e-6
                cov = (np.diag(hz[d]) - np.outer(hz[d], hz[d])) / n[d]
                var += g @ cov @ g
            se = out.query("outcome == @name and duration == @horizon")["std_error"].item()
            assert se**2 == pytest.approx(var, rel=1e-6)


# ----------------------------------------------------------------------------- statistics


def test_constant_hazards_closed_form_within_3_se():
    p = PROBS["A"]
    sp = simulate_spells(np.random.default_rng(SEED + 2), 8000, probs={"A": p}, missing_share=0)
    cif = cumulative_incidence(incidence_counts(person_months(sp), None, 30))
    for d in (6, 24):
        truth = true_cif(p, d)
        for k in CAUSES:
            row = cif[(cif["duration"] == d) & (cif["outcome"] == k)].iloc[0]
            assert abs(row["cif"] - truth[k]) < 3 * row["std_error"], (d, k, row["cif"], truth[k])


@pytest.mark.slow
def test_interval_coverage_and_se_over_replications():
    p, reps, n = PROBS["A"], 200, 1500
    rng = np.random.default_rng(SEED + 3)
    checks = [(6, "work"), (18, "work"), (6, "education"), (18, "education"), (18, "any")]
    est = {c: [] for c in checks}
    se = {c: [] for c in checks}
    hit = {c: [] for c in checks}
    for _ in range(reps):
        sp = simulate_spells(rng, n, probs={"A": p}, missing_share=0)
        out = cumulative_incidence(counts_from_spells(sp, 18)).set_index(["duration", "outcome"])
        for d, k in checks:
            row = out.loc[(d, k)]
            est[(d, k)].append(row["cif"])
            se[(d, k)].append(row["std_error"])
            hit[(d, k)].append(row["ci_low"] <= true_cif(p, d)[k] <= row["ci_high"])
    mc_se = np.sqrt(0.95 * 0.05 / reps)
    for c in checks:
        cover = np.mean(hit[c])
        assert abs(cover - 0.95) <= 3 * mc_se, (c, cover)
        # the mean SE against the Monte Carlo SD (relative MC SE of an SD ~ 1/sqrt(2 reps))
        ratio = np.mean(se[c]) / np.std(est[c], ddof=1)
        assert abs(ratio - 1) <= 3 / np.sqrt(2 * (reps - 1)), (c, ratio)


# ----------------------------------------------------------------------------- engines


@pytest.mark.parametrize("group_col, missing_group, education_col", [
    ("grp", "own", "exit_education"), ("grp", "drop", "exit_education"),
    (None, "own", "exit_education"), ("grp", "own", None),
])
def test_duckdb_equals_pandas(pm, group_col, missing_group, education_col):
    kw = dict(group_col=group_col, max_duration=30, missing_group=missing_group,
              education_col=education_col)
    by_pandas = incidence_counts(pm, engine="pandas", **kw)
    by_duckdb = incidence_counts(pm, **kw)
    pd.testing.assert_frame_equal(by_duckdb, by_pandas)
    # Arrow input and a relation on a memory-bounded connection give the same
    con = duckdb.connect(config={"memory_limit": "200MB", "threads": 2})
    by_arrow = incidence_counts(pa.Table.from_pandas(pm), con=con, **kw)
    pd.testing.assert_frame_equal(by_arrow, by_pandas)
    pd.testing.assert_frame_equal(incidence_counts(con.from_df(pm), **kw), by_pandas)
    groups = list(dict.fromkeys(by_pandas["group"]))
    if group_col is None:
        assert groups == ["all"]
    elif missing_group == "own":
        assert groups == ["A", "B", "C", "missing"]
        missing = pm["grp"].isna()
        assert by_pandas.loc[by_pandas["group"] == "missing", "at_risk"].sum() == \
            (missing & (pm["duration"] <= 30)).sum()
    else:
        assert groups == ["A", "B", "C"]
    assert ("exits_education" in by_pandas) == (education_col is not None)


def test_integer_groups_keep_natural_order_and_tail_is_dropped(pm):
    frame = pm.assign(step=pm["grp"].map({"A": 10, "B": 2, "C": 1}).astype("Int64"))
    counts = incidence_counts(frame, "step", 20)
    assert list(dict.fromkeys(counts["group"])) == ["1", "2", "10", "missing"]
    assert counts["duration"].max() == 20
    pd.testing.assert_frame_equal(counts, incidence_counts(frame, "step", 20, engine="pandas"))
    # dropping durations above max_duration changes nothing at or below it
    short = cumulative_incidence(incidence_counts(pm, "grp", 12))
    long = cumulative_incidence(incidence_counts(pm, "grp", 40))
    long = long[long["duration"] <= 12].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.drop(columns="group_clients"),
                                  long.drop(columns="group_clients"))


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_inconsistent_exit_flags_are_refused(pm, engine):
    bad = pm.copy()
    i = bad.index[(bad["exit_work"] == 1) & (bad["duration"] <= 30)][0]
    bad.loc[i, "exit_any"] = 0
    with pytest.raises(IncidenceInputError, match="exit"):
        incidence_counts(bad, "grp", 30, engine=engine)


# ----------------------------------------------------------------------------- disclosure


def expected_hidden(cif: pd.DataFrame, min_cell: int, secondary: bool) -> pd.Series:
    """The rule written out point by point (independently of the implementation)."""
    hide = (cif["clients"] < min_cell) | cif["cum_exits"].between(1, min_cell - 1)
    if secondary:
        for _, point in cif.groupby(["group", "duration"]):
            if hide[point.index[point["outcome"] == "any"]].any():
                continue
            parts = point[point["outcome"].isin(CAUSES)]
            hidden = hide[parts.index]
            if hidden.sum() == 1:
                shown = parts[~hidden.to_numpy()]
                order = {k: i for i, k in enumerate(CAUSES)}
                pick = min(shown.index, key=lambda i: (shown.loc[i, "cum_exits"],
                                                       order[shown.loc[i, "outcome"]]))
                hide[pick] = True
    return hide


@pytest.mark.parametrize("secondary", [True, False])
def test_suppression(secondary):
    rng = np.random.default_rng(SEED + 4)
    # "mid" never exits to education: its zeros must stay published
    probs = {"big": (0.05, 0.004, 0.02), "mid": (0.04, 0.0, 0.02), "tiny": (0.05, 0.01, 0.02)}
    sp = pd.concat([
        simulate_spells(rng, 400, {"big": probs["big"]}, missing_share=0),
        simulate_spells(rng, 120, {"mid": probs["mid"]}, missing_share=0),
        simulate_spells(rng, 8, {"tiny": probs["tiny"]}, missing_share=0, client_share=1),
    ], ignore_index=True)
    sp["client_id"] = sp["grp"] + sp["client_id"].astype(str)  # clients within a group
    sp["spell_id"] = np.arange(len(sp))
    counts = incidence_counts(person_months(sp), "grp", 40)
    cif = cumulative_incidence(counts)
    assert counts.loc[counts["group"] == "tiny", "group_clients"].iloc[0] < 10
    out = suppress_incidence(cif, 10, secondary_outcomes=secondary)
    assert "tiny" not in set(out["group"])
    kept = cif[cif["group"] != "tiny"].reset_index(drop=True)
    primary = expected_hidden(kept, 10, secondary=False)
    want = expected_hidden(kept, 10, secondary=secondary)
    # the data exercise every rule
    assert (kept["clients"] < 10).any() and kept["cum_exits"].between(1, 9).any()
    assert ((kept["cum_exits"] == 0) & (kept["clients"] >= 10)).any()
    assert (want != primary).any() == secondary
    np.testing.assert_array_equal(out["suppressed"].to_numpy(), want.to_numpy())
    blank = out[["cif", "std_error", "ci_low", "ci_high", "at_risk", "clients", "cum_exits"]].isna()
    np.testing.assert_array_equal(blank.all(axis=1).to_numpy(), want.to_numpy())
    np.testing.assert_array_equal(blank.any(axis=1).to_numpy(), want.to_numpy())
    shown = ~want.to_numpy()
    np.testing.assert_allclose(out.loc[shown, "cif"].to_numpy(float), kept.loc[shown, "cif"])
    np.testing.assert_array_equal(out.loc[shown, "cum_exits"].to_numpy(int),
                                  kept.loc[shown, "cum_exits"])
    zero = (kept["cum_exits"] == 0) & (kept["clients"] >= 10) & ~want
    assert (out.loc[zero, "cif"] == 0).all() and zero.any()  # 0 exits: published


# ----------------------------------------------------------------------------- figure


def test_figure_lines_and_gaps(tmp_path, pm):
    set_theme()
    cif = cumulative_incidence(incidence_counts(pm, "grp", 24))
    cif.loc[(cif["group"] == "B") & cif["duration"].between(5, 8), "cif"] = np.nan
    cif.loc[(cif["group"] == "C") & (cif["outcome"] == "education") & (cif["duration"] < 4),
            "cif"] = np.nan
    fig = incidence_figure(cif, group_label="client group", min_cell=10)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_title(loc="left") for ax in axes] == \
        ["exit to work", "exit to education", "other exit"]
    groups = ["A", "B", "C", "missing"]
    for ax, outcome in zip(axes, CAUSES):
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert [ln.get_label() for ln in lines] == groups
        for ln, group in zip(lines, groups):
            x, y = (np.asarray(v, dtype=float) for v in ln.get_data())
            ref = cif[(cif["group"] == group) & (cif["outcome"] == outcome)]
            ref = ref[ref["cif"].notna()].sort_values("duration")
            np.testing.assert_array_equal(x[np.isfinite(y)], ref["duration"].to_numpy(float))
            np.testing.assert_allclose(y[np.isfinite(y)], 100 * ref["cif"].to_numpy())
            # a suppressed point is a gap in the line (NaN), not bridged by interpolation
            blank = cif[(cif["group"] == group) & (cif["outcome"] == outcome) & cif["cif"].isna()]
            assert set(blank["duration"]) <= set(x[np.isnan(y)])
            if group == "B":
                assert len(blank) == 4
    # deterministic output (the project's save helper strips dates)
    save_png_svg(fig, tmp_path / "a.png")
    fig = incidence_figure(cif, group_label="client group", min_cell=10)
    save_png_svg(fig, tmp_path / "b.png")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert plt.get_fignums() == []
