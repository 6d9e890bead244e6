"""Alternative adoption estimators in the estimate stage (``impact.estimate.alternatives``).

Data: ``dgp.staggered_cells`` (40 units, 48 months, four adoption dates, 8 never-adopters:
moderndid, like R ``did``, refuses never-treated controls with fewer than 5 units) with its growing effect switched off (``slope=0``) and a constant effect TAU added to every
adopted cell, so the effect is homogeneous and Callaway-Sant'Anna, Sun-Abraham and the
imputation estimator all target TAU; and the session's lean ``simulate`` run (``result``,
dynamic effects) for the rows and the Goodman-Bacon identity. Seeds fixed in advance.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from impact.estimate import EstimateParams, EstimationWarning, estimate_all

from .dgp import staggered_cells

TAU = 1.0  # pp, homogeneous
ALT_MODELS = ("adoption_cs_never", "adoption_cs_notyet", "adoption_sunab", "adoption_bacon")
TYPES = ("treated_vs_never", "earlier_vs_later", "later_vs_earlier")


def _homogeneous(seed: int, **kw):
    cells, adoption, _ = staggered_cells(seed=seed, slope=0.0, **kw)
    g = cells["municipality"].map(
        dict(zip(adoption["municipality"],
                 adoption["adoption_date"].dt.year * 12 + adoption["adoption_date"].dt.month - 1)))
    adopted = (cells["t"] >= g).to_numpy()
    cells = cells.copy()
    cells["exits_work"] = cells["exits_work"] + np.where(adopted, TAU, 0.0) * cells["person_months"] / 100
    return cells, adoption


def _run(cells, adoption, record=False, **adoption_params):
    params = EstimateParams.from_dict(adoption=adoption_params, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_all(pd.DataFrame(), cells, None, adoption, None, params)
    return (res, caught) if record else res


@pytest.fixture(scope="module")
def homog():
    return _run(*_homogeneous(seed=11, n_never=8))


def _overall(res, model):
    sub = res.model(model)
    return sub[(sub["term"] == "att") & sub["rel_time"].isna() & sub["cohort"].isna()].iloc[0]


def test_rows_appear_in_tidy_table(result):
    for m in ALT_MODELS:
        assert m in result.models, m
    for m in ("adoption_cs_never", "adoption_cs_notyet"):
        terms = set(result.model(m)["term"])
        assert {"att", "att_dynamic", "att_e"} <= terms, (m, terms)
        ev = result.model(m).query("term == 'att_e'")
        assert ev["rel_time"].notna().all() and (ev["rel_time"] >= 0).any()
    sa = result.model("adoption_sunab")
    assert {"att", "att_e"} <= set(sa["term"])
    assert sa.query("term == 'att_e'")["rel_time"].notna().all()
    bacon = result.model("adoption_bacon")
    assert "twfe" in set(bacon["term"])
    assert any(t.startswith("weight:") for t in bacon["term"])
    assert result.meta["adoption_alternatives"]["n_units_dropped_unbalanced"] >= 0


def test_bacon_weighted_sum_equals_reported_twfe(result):
    b = result.model("adoption_bacon").set_index("term")["estimate"]
    types = [t for t in TYPES if f"weight:{t}" in b.index]
    assert types
    assert sum(b[f"weight:{t}"] for t in types) == pytest.approx(1.0, abs=1e-9)
    total = sum(b[f"weight:{t}"] * b[t] for t in types)
    assert total == pytest.approx(b["twfe"], rel=1e-8, abs=1e-10)


def test_estimators_agree_with_truth_under_homogeneous_effects(homog):
    for m in ("adoption_imputation", "adoption_cs_never", "adoption_cs_notyet",
              "adoption_sunab"):
        r = _overall(homog, m)
        assert abs(r["estimate"] - TAU) < 3 * r["std_error"], (m, r["estimate"], r["std_error"])
    for m in ("adoption_cs_never", "adoption_cs_notyet"):
        r = homog.model(m).query("term == 'att_dynamic'").iloc[0]
        assert abs(r["estimate"] - TAU) < 3 * r["std_error"], (m, r["estimate"])
    # with a constant effect, TWFE is unbiased too, and Bacon still decomposes it exactly
    b = homog.model("adoption_bacon").set_index("term")["estimate"]
    total = sum(b[f"weight:{t}"] * b[t] for t in TYPES if f"weight:{t}" in b.index)
    assert total == pytest.approx(b["twfe"], rel=1e-8)


def test_empty_switch_removes_rows_and_leaves_headline():
    cells, adoption = _homogeneous(seed=12, n_units=20, n_months=30, cohorts=(8, 14, 20),
                                   n_never=6)
    full = _run(cells, adoption)
    none = _run(cells, adoption, alternatives=[])
    assert not set(ALT_MODELS) & set(none.models)
    assert set(ALT_MODELS) <= set(full.models)
    assert none.headline["adoption"] == full.headline["adoption"]
    pd.testing.assert_frame_equal(none.model("adoption_imputation"),
                                  full.model("adoption_imputation"))
    only = _run(cells, adoption, alternatives=["bacon"])
    assert "adoption_bacon" in only.models and "adoption_sunab" not in only.models


def test_failure_is_a_warning_not_an_error():
    cells, adoption = _homogeneous(seed=13, n_units=20, n_months=30, cohorts=(8, 14, 20),
                                   n_never=0)
    res, caught = _run(cells, adoption, record=True)
    msgs = [str(w.message) for w in caught if issubclass(w.category, EstimationWarning)]
    assert "adoption_cs_never" not in res.models
    assert any(m.startswith("adoption_cs_never") for m in msgs), msgs
    assert "adoption_cs_notyet" in res.models and "adoption_bacon" in res.models
    ref = _run(cells, adoption, alternatives=[])
    pd.testing.assert_frame_equal(res.model("adoption_imputation"),
                                  ref.model("adoption_imputation"))


@pytest.mark.parametrize("bad", [["cs", "did2s"], "cs", ["cs", "cs"], [1]])
def test_alternatives_param_validated(bad):
    with pytest.raises(ValueError, match="adoption.alternatives"):
        EstimateParams.from_dict(adoption={"alternatives": bad})


def test_alternatives_param_default_and_roundtrip():
    p = EstimateParams.from_dict()
    assert p.adoption.alternatives == ("cs", "sunab", "bacon")
    assert p.to_dict()["adoption"]["alternatives"] == ["cs", "sunab", "bacon"]
    assert EstimateParams.from_dict(adoption={"alternatives": []}).adoption.alternatives == ()


def test_one_cs_control_group_gives_the_same_rows_as_both():
    """A specification that reports one Callaway-Sant'Anna control group estimates only
    that one (``cs_controls``): its rows equal those of the run with both groups."""
    from impact.estimate.alternatives import adoption_alternatives

    cells, adoption = _homogeneous(seed=12, n_never=8)
    g = cells["municipality"].map(
        dict(zip(adoption["municipality"],
                 adoption["adoption_date"].dt.year * 12 + adoption["adoption_date"].dt.month - 1)))
    frame = cells.assign(unit=cells["municipality"], g=g.to_numpy(dtype="float64"))
    both, _ = adoption_alternatives(frame, ["cs"])
    for control, model in (("nevertreated", "adoption_cs_never"),
                           ("notyettreated", "adoption_cs_notyet")):
        one, _ = adoption_alternatives(frame, ["cs"], cs_controls=(control,))
        assert {r["model"] for r in one} == {model}
        assert one == [r for r in both if r["model"] == model]
