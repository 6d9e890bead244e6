"""The default synthetic country has real magnitudes and carries its traps.

Simulated yearly stock, inflow and outflow to work per municipality (2016 and 2017,
person-month counts from the tables) are compared with the real CBS figures of
83747NED/84066NED for ages 15 to the AOW age, mapped onto 2023 codes and turned into
benefit units, the data contract's clients, by the national benefits per recipient of 37789ksz
(``Reference.benefits_per_recipient``); the comparison table is printed (run pytest with
``-s`` to see it). Tolerance: the pooled ratio must lie within a factor 1.25 (the persons
aged 15 or older are 1.29 per client, so counting persons fails it) and the geometric mean
over municipalities within 1.5, since the factor is one national number and CBS rounds
municipal counts to tens; the exit-to-work rate, which the intercept is set to, within 10%.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from impact.simulate import REFERENCE_FILES, SimulateParams, load_reference, simulate_country

from .conftest import REF_DIR, SEED  # noqa: F401  (the reference fixture lives there)


@pytest.fixture(scope="module")
def default(reference):
    p = SimulateParams.from_dict({})
    return p, simulate_country(p, reference, seed=SEED)


def _months(s: pd.Series) -> pd.Series:
    d = pd.to_datetime(s, format="%Y-%m-%d")
    return d.dt.year * 12 + d.dt.month - 1


def _yearly(tables, years) -> pd.DataFrame:
    t = tables["trajectories"]
    a = _months(t["start_date"]).to_numpy()
    b = _months(t["end_date"]).fillna(10**7).to_numpy()
    rows = []
    for y in years:
        lo, hi = y * 12, y * 12 + 11
        at_risk = (np.minimum(b, hi) - np.maximum(a, lo) + 1).clip(0)
        ends = (b >= lo) & (b <= hi)
        rows.append(pd.DataFrame({
            "municipality": t["municipality"], "year": y, "stock": at_risk / 12,
            "inflow": (a >= lo) & (a <= hi), "work_exits": ends & (t["exit_reason"] == "work").to_numpy(),
            "exits": ends}))
    return pd.concat(rows).groupby(["municipality", "year"], as_index=False).sum()


def test_size(default):
    p, country = default
    t = country.truth
    assert 25 <= t["n_municipalities"] <= 40
    assert 1_500_000 <= t["n_person_months"] <= 3_000_000


def test_magnitudes_match_cbs_2016_2017(default, reference):
    p, country = default
    sim = _yearly(country.tables, (2016, 2017))
    real = reference.real[reference.real["year"].isin((2016, 2017))]
    both = sim.merge(real, on=["municipality", "year"], suffixes=("_sim", "_cbs"))
    assert len(both) == 2 * country.truth["n_municipalities"]
    print("\nsimulated / CBS, 2016-2017 (default preset, seed %d)" % SEED)
    for col in ("stock", "inflow", "work_exits"):
        s, r = both[f"{col}_sim"] / p.scale, both[f"{col}_cbs"]
        pooled = s.sum() / r.sum()
        geo = float(np.exp(np.mean(np.log(s.clip(lower=1) / r.clip(lower=10)))))
        print(f"  {col:<11} pooled {pooled:5.2f}  geometric mean over municipalities {geo:5.2f}")
        assert 1 / 1.25 < pooled < 1.25 and 1 / 1.5 < geo < 1.5, col
    rate = both["work_exits_sim"].sum() / both["stock_sim"].sum() / 12
    cbs_rate = both["work_exits_cbs"].sum() / both["stock_cbs"].sum() / 12
    print(f"  exit to work {100 * rate:.2f}% per month (CBS: {100 * cbs_rate:.2f}%)")
    assert abs(rate / cbs_rate - 1) < 0.10
    total = both["exits"].sum() / both["stock_sim"].sum() / 12
    assert 0.014 < total < 0.03  # CBS 2016-17: all outflow about 2% of the stock per month


def test_hazard_falls_with_duration(default):
    p, country = default
    t = country.tables["trajectories"]
    w0, w1 = p.start_month, p.end_month
    a, b = _months(t["start_date"]).to_numpy(), _months(t["end_date"]).fillna(w1).to_numpy()
    work = (t["exit_reason"] == "work").to_numpy() & (b <= w1)
    edges = [0, 6, 12, 24, 60, 10**4]
    rates = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        # person-months with duration in [lo, hi) inside the window, and exits there
        first, last = np.maximum(a + lo, w0), np.minimum(np.minimum(a + hi - 1, b), w1)
        pm = np.clip(last - first + 1, 0, None).sum()
        ex = (work & (b - a >= lo) & (b - a < hi) & (b >= w0)).sum()
        rates.append(ex / pm)
    assert all(x > y for x, y in zip(rates, rates[1:])), rates


def test_adoption_is_timed_near_business_parks(default):
    p, country = default
    ad = country.tables["adoption"]
    ad = ad[ad["programme"] == "gewogen_maatwerk"].set_index("municipality")["adoption_date"]
    sh = country.tables["shocks"]
    parks = sh[sh["type"] == "business_park_opening"].set_index("municipality")["date"]
    both = ad.index.intersection(parks.index)
    assert len(both) >= 3
    gap = (_months(ad[both]) - _months(parks[both])).abs()
    near = (gap <= 6).mean()
    # under adoption dates drawn at random in the window, P(|gap| <= 6) is at most 13 / 84
    assert near > 0.5 > 13 / 84
    # and park municipalities adopt more often than the others
    codes = country.tables["municipalities"]["municipality"]
    has_park = codes.isin(parks.index)
    adopts = codes.isin(ad.index)
    assert adopts[has_park].mean() > adopts[~has_park].mean()


def test_quality_goes_with_or_against_prosperity(default, reference):
    """Realised (person-month weighted) municipal mean quality carries the planted sign;
    with 31 municipalities, many with a handful of caseworkers, its correlation is noisier
    than the planted one (exactly ``quality_prosperity_corr``)."""
    p, country = default
    variants = {p.quality_prosperity_corr: country}
    neg = SimulateParams.from_dict({"quality_prosperity_corr": -0.5})
    variants[-0.5] = simulate_country(neg, reference, seed=SEED)
    for corr, c in variants.items():
        mu = pd.DataFrame(c.truth["municipalities"]).T
        realised = np.corrcoef(mu["quality_mean"].astype(float), mu["prosperity"].astype(float))[0, 1]
        assert np.sign(realised) == np.sign(corr) and abs(realised) > 0.1, (corr, realised)


def _within_sd(lm: pd.DataFrame) -> float:
    """SD of the yearly municipal unemployment rate net of municipality and year means."""
    m = lm[lm["area"].str.startswith("GM") & (lm["indicator"] == "unemployment_rate")]
    x = m.pivot(index="area", columns="period", values="value").to_numpy()
    return float((x - x.mean(0) - x.mean(1, keepdims=True) + x.mean()).std())


def test_municipal_indicator_captures_only_part_of_local_conditions(default, reference):
    p, country = default
    assert 0.25 < country.truth["local_conditions_captured_r2"] < 0.75  # lm_local_captured = 0.5
    lm = country.tables["labour_market"]
    assert lm.loc[lm["area"].str.startswith("GM"), "period"].str.fullmatch(r"\d{4}").all()
    sds = {}
    for share in (0.0, 1.0):
        q = SimulateParams.from_dict({"preset": "small", "scale": 0.1, "lm_local_captured": share})
        c = simulate_country(q, reference, seed=SEED)
        sds[share] = _within_sd(c.tables["labour_market"])
        assert c.truth["local_conditions_captured_r2"] == pytest.approx(share, abs=1e-9)
    assert sds[1.0] > 2 * sds[0.0]


def _raw(stem: str) -> pd.DataFrame:
    return pd.read_csv(REF_DIR / f"{stem}.csv")


def test_clients_are_benefit_units_under_the_aow_age(reference):
    """The data contract's client is the benefit unit: the reference turns the CBS persons
    aged 15 to the AOW age into benefits with the national ratio of 2016-2017, computed
    here from the raw files (the country row rather than the sum of municipalities)."""
    b = _raw("cbs_37789ksz_uitkeringen_nl_1998_2026_x1000")
    monthly = b[b["Perioden"].str.fullmatch(r"201[67]MM\d\d")]
    n_benefits = 1000 * monthly["Bijstandsuitkeringen tot de AOW-leeftijd"].mean()
    m = _raw("cbs_bijstand_reintegratie_gemeenten_2015_2017_long")
    nl = m[(m["Regio_code"] == "NL01") & m["Jaar"].isin([2016, 2017])]
    working = nl.loc[nl["Leeftijd"] == "15 jaar tot AOW-leeftijd", "Bijstandsontvangers_2"].mean()
    everyone = nl.loc[nl["Leeftijd"] == "15 jaar of ouder (totaal)", "Bijstandsontvangers_2"].mean()
    assert len(monthly) == 24 and n_benefits > 0
    assert reference.benefits_per_recipient == pytest.approx(n_benefits / working, rel=0.005)
    stock = reference.municipalities["stock"].sum()
    assert stock == pytest.approx(n_benefits, rel=0.005)
    assert 0.7 < stock / everyone < 0.85  # the persons aged 15 or older were 1.29 per client
    gm = m[m["Regio_code"].str.startswith("GM") & m["Jaar"].isin([2016, 2017])
           & (m["Leeftijd"] == "15 jaar tot AOW-leeftijd")]
    for col, raw in (("inflow", "Instroom_4"), ("work_exits", "UitstroomNaarWerk_8")):
        in_units = gm[raw].sum() / 2 * n_benefits / working
        assert reference.municipalities[col].sum() == pytest.approx(in_units, rel=0.005), col


def test_benefit_file_that_does_not_match_the_municipal_one_is_an_error():
    frames = {Path(f).stem: _raw(Path(f).stem) for f in REFERENCE_FILES}
    b = frames["cbs_37789ksz_uitkeringen_nl_1998_2026_x1000"].copy()
    col = "Bijstandsuitkeringen tot de AOW-leeftijd"
    b[col] = pd.to_numeric(b[col], errors="coerce") * 1000  # persons instead of thousands
    with pytest.raises(ValueError, match="the files do not match"):
        load_reference({**frames, "cbs_37789ksz_uitkeringen_nl_1998_2026_x1000": b})
    short = frames["cbs_37789ksz_uitkeringen_nl_1998_2026_x1000"]
    short = short[~short["Perioden"].astype(str).str.startswith("2017")]
    with pytest.raises(ValueError, match="lacks monthly"):
        load_reference({**frames, "cbs_37789ksz_uitkeringen_nl_1998_2026_x1000": short})
