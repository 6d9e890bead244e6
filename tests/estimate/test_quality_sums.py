"""The shared quality pass (``quality_sums``, stage ``quality_sums``) against each
specification's own pass (``quality_stream.quality_grams``): the same raw blocks, names,
cells and warnings, and so the same estimates. Blocks of a specification served by its
group's pass with other columns (municipality x month effects from the region x month
pass) are sub-blocks of a larger BLAS product: equal to 1e-12, not bit for bit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from impact import io
from impact.estimate import EstimateParams
from impact.estimate.frames import EstimationWarning
from impact.estimate.quality_stream import estimate_quality_file, quality_grams
from impact.estimate.quality_sums import load, pass_key, shared_sums, write
from impact.estimate.specs import Specification

from .dgp import file_like_panel

SPECS = {
    "iv": Specification("iv", "quality", "iv", value_added=True),
    "ols": Specification("ols", "quality", "ols"),
    "munimonth": Specification("munimonth", "quality", "iv", fixed_effects="municipality_month"),
    "inflow": Specification("inflow", "quality", "iv", sample="inflow"),
    "region": Specification("region", "quality", "ols", cluster="region"),
    "few": Specification("few", "quality", "iv", controls=("sex", "prior_benefit_months")),
    "hazard": Specification("hazard", "quality", "hazard_cloglog"),
    "adoption": Specification("adoption", "adoption", "imputation"),
}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("qs") / "person_months.parquet"
    io.write_parquet(file_like_panel(11, 5), p)
    return p


def _own(path, spec, base):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        q = quality_grams(path, spec.apply(base), spec.sample, raw=True, batch_rows=997)
    return q, [str(w.message) for w in caught]


def _same_blocks(a, b, exact):
    assert a.names == b.names and a.exog == b.exog
    pd.testing.assert_frame_equal(a.cells, b.cells)
    ga, gb = a.grams, b.grams
    assert list(ga.labels) == list(gb.labels) and ga.n_obs == gb.n_obs
    for f in ("pair_cell", "pair_cluster", "pair_count", "pair_sums"):
        np.testing.assert_array_equal(getattr(ga, f), getattr(gb, f), err_msg=f)
    if exact:
        np.testing.assert_array_equal(ga.C, gb.C)
    else:
        np.testing.assert_allclose(ga.C, gb.C, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("lm_controls", [None, ["unemployment_rate"]])
def test_shared_pass_equals_each_own_pass(path, lm_controls):
    base = EstimateParams.from_dict(estimate={"lm_controls": lm_controls})
    got = shared_sums(path, SPECS, base, batch_rows=997)  # the own passes' batches
    assert set(got) == {"iv", "ols", "munimonth", "inflow", "region", "few"}
    for name, (q, warned) in got.items():
        own, own_warned = _own(path, SPECS[name], base)
        assert warned == own_warned, name
        # the municipality x month model's blocks come from the region x month pass
        _same_blocks(q, own, exact=name != "munimonth")
    assert any("dropped for missing" in w for w in got["iv"][1])
    assert got["inflow"][0].grams.n_obs < got["iv"][0].grams.n_obs
    # the bins are in the region x month model only
    assert any(n.startswith("adoption_bin") for n in got["iv"][0].names)
    assert not any(n.startswith(("adoption_bin", "shock_bin")) for n in got["munimonth"][0].names)


def _estimate(path, spec, base, shared=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        rows, head = estimate_quality_file(path, spec.apply(base), spec.estimator, spec.sample,
                                           batch_rows=997, shared=shared)
    return pd.DataFrame(rows), head, [str(w.message) for w in caught]


def test_estimates_from_the_written_folders_equal_their_own(path, tmp_path):
    base = EstimateParams()
    got = shared_sums(path, SPECS, base, batch_rows=997)  # several batches, as the own
    for name, spec in SPECS.items():
        write(tmp_path / name, pass_key(spec, base, path), got.get(name))
    # written again: the same bytes (DVC reruns no estimate stage for an unchanged folder)
    for name in ("iv", "hazard"):
        again = tmp_path / "again" / name
        write(again, pass_key(SPECS[name], base, path), got.get(name))
        for f in (tmp_path / name).iterdir():
            assert (again / f.name).read_bytes() == f.read_bytes(), f
    meta = json.loads((tmp_path / "hazard" / "meta.json").read_text())
    assert meta == {"key": None, "shared": False}
    assert load(tmp_path / "hazard", pass_key(SPECS["hazard"], base, path)) is None
    for name in got:
        spec = SPECS[name]
        shared = load(tmp_path / name, pass_key(spec, base, path))
        assert shared is not None
        a_rows, a_head, a_warned = _estimate(path, spec, base)
        b_rows, b_head, b_warned = _estimate(path, spec, base, shared)
        assert a_warned == b_warned and a_warned  # the drops, repeated
        tol = 1e-10 if name == "munimonth" else 0
        num = a_rows.select_dtypes("number").columns
        np.testing.assert_allclose(b_rows[num].to_numpy(float), a_rows[num].to_numpy(float),
                                   rtol=tol, atol=tol)
        other = a_rows.columns.difference(num)
        assert a_rows[other].astype(str).equals(b_rows[other].astype(str))
        for k, v in a_head.items():
            if isinstance(v, float):
                np.testing.assert_allclose(b_head[k], v, rtol=tol, atol=tol, err_msg=k)
            else:
                assert b_head[k] == v, k


def test_folder_for_other_settings_is_not_used(path, tmp_path):
    """A folder written for other settings (stale, or from another params.yaml) is
    ignored: the stage makes its own pass."""
    base = EstimateParams()
    got = shared_sums(path, {"iv": SPECS["iv"]}, base)
    write(tmp_path / "iv", pass_key(SPECS["iv"], base, path), got["iv"])
    other = EstimateParams.from_dict(estimate={"controls": ["sex"]})
    assert load(tmp_path / "iv", pass_key(SPECS["iv"], other, path)) is None
    assert load(tmp_path / "missing", pass_key(SPECS["iv"], base, path)) is None
    assert load(None, pass_key(SPECS["iv"], base, path)) is None
    assert load(tmp_path / "iv", pass_key(SPECS["iv"], base, path)) is not None
    # the same settings on another panel file (a folder of an earlier panel)
    pm = io.read_person_months(path)
    other_file = tmp_path / "other.parquet"
    io.write_parquet(pm.iloc[:-5], other_file)
    assert load(tmp_path / "iv", pass_key(SPECS["iv"], base, other_file)) is None


def test_empty_sample_is_written_and_repeats_its_warnings(path, tmp_path):
    """No spell starts in the window: the inflow pass finds no person-month; the folder
    says so and the estimate stage gives what its own pass gives (no estimate, the same
    warnings)."""
    pm = io.read_person_months(path)
    old = tmp_path / "old.parquet"
    io.write_parquet(pm.assign(left_truncated=1), old)
    base = EstimateParams()
    spec = SPECS["inflow"]
    got = shared_sums(old, {"inflow": spec}, base)
    assert got["inflow"][0] is None
    write(tmp_path / "inflow", pass_key(spec, base, old), got["inflow"])
    shared = load(tmp_path / "inflow", pass_key(spec, base, old))
    a_rows, a_head, a_warned = _estimate(old, spec, base)
    b_rows, b_head, b_warned = _estimate(old, spec, base, shared)
    assert a_head is None and b_head is None and a_rows.empty and b_rows.empty
    assert a_warned == b_warned and any("not estimated" in w for w in b_warned)


def test_one_municipality_and_no_quality_columns(path, tmp_path):
    pm = io.read_person_months(path)
    one = tmp_path / "one.parquet"
    io.write_parquet(pm[pm["municipality"] == pm["municipality"].iloc[0]], one)
    base = EstimateParams()
    specs = {n: SPECS[n] for n in ("iv", "inflow")}
    got = shared_sums(one, specs, base, batch_rows=997)
    for name, (q, warned) in got.items():
        own, own_warned = _own(one, SPECS[name], base)
        assert warned == own_warned and any("clustered by caseworker" in w for w in warned)
        _same_blocks(q, own, exact=True)
    none = tmp_path / "none.parquet"
    io.write_parquet(pm.drop(columns=["quality_a"]), none)
    assert shared_sums(none, specs, base) == {}  # each stage says what is missing


def test_group_of_municipality_month_specifications_only(path):
    """A group with no region x month member makes its pass without the bins (no wider
    product: its blocks bit for bit its own pass's)."""
    base = EstimateParams()
    specs = {"munimonth": SPECS["munimonth"],
             "munimonth_ols": Specification("munimonth_ols", "quality", "ols",
                                            fixed_effects="municipality_month")}
    got = shared_sums(path, specs, base, batch_rows=997)
    for name, (q, warned) in got.items():
        own, own_warned = _own(path, specs[name], base)
        assert warned == own_warned
        _same_blocks(q, own, exact=True)
