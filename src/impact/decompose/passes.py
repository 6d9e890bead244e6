"""One pass over the panel's Parquet file, batch by batch, for a model of the
decomposition's design (``design.build_design``): the raw cluster Gram sums of its fitted
rows (``quality_stream.GramSums``) and sums per unit (``UnitSums``). Shared by the
streamed decomposition (``decompose.stream``) and the streamed fair benchmark
(``benchmark.stream``); see their module notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import io
from impact.decompose.design import INT_CODED, Design, build_design
from impact.decompose.model import ModelFit
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import GramSums, _Codes, _first_rows, _Screen
from impact.spill import spilling

__all__ = ["DesignPass", "UnitSums", "design_columns", "distinct_counts",
           "distinct_counts_by_span"]


def _grow(a: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([a, np.zeros(m - len(a))]) if len(a) < m else a


class UnitSums:
    """Sums per unit (integer codes, growing as units appear) over the rows given: person-
    months, exits, every numeric regressor (a missing value makes its unit's sum missing,
    as the in-memory sums do), every categorical level's count, person-months per unit x
    key (a key is a (municipality, region, month) of ``DesignPass.key_info``), measured
    quality and, with ``half`` rows, each unit x caseworker's count and sum of
    ``quality_a - quality_b`` (what ``benchmark.stats.split_half_noise`` reads)."""

    def __init__(self) -> None:
        self.n, self.exits, self.qsum, self.qn = (np.zeros(0) for _ in range(4))
        self.num: dict[str, np.ndarray] = {}
        self.lev: dict[str, np.ndarray] = {}     # variable -> (units, levels) counts
        self.pairs = _Codes()
        self.pair_unit: list[int] = []
        self.pair_key: list[int] = []
        self.pair_n = np.zeros(0)
        self.halves = _Codes()
        self.half_unit: list[int] = []
        self.half_cw: list[int] = []
        self.half_w = np.zeros(0)
        self.half_wd = np.zeros(0)

    def add(self, U: int, unit, exits, num, cats, levels, key, q=None, half=None) -> None:
        self.n, self.exits = _grow(self.n, U), _grow(self.exits, U)
        self.qsum, self.qn = _grow(self.qsum, U), _grow(self.qn, U)
        self.n += np.bincount(unit, minlength=U)
        self.exits += np.bincount(unit, weights=exits, minlength=U)
        if q is not None:
            qok = np.isfinite(q)
            self.qsum += np.bincount(unit[qok], weights=q[qok], minlength=U)
            self.qn += np.bincount(unit[qok], minlength=U)
        for c, v in num.items():
            self.num[c] = _grow(self.num.get(c, np.zeros(0)), U) + np.bincount(
                unit, weights=v, minlength=U)
        for var, codes in cats.items():
            L = levels[var]
            old = self.lev.get(var, np.zeros((0, 0)))
            new = np.zeros((U, L))
            new[:old.shape[0], :old.shape[1]] = old
            new += np.bincount(unit * L + codes, minlength=U * L).reshape(U, L)
            self.lev[var] = new
        pair = self.pairs(unit * (1 << 32) + key)
        new = _first_rows(pair, len(self.pair_unit))
        self.pair_unit += unit[new].tolist()
        self.pair_key += key[new].tolist()
        self.pair_n = _grow(self.pair_n, len(self.pairs)) + np.bincount(
            pair, minlength=len(self.pairs))
        if half is not None:
            rows, cw, d = half
            hu = unit[rows]
            h = self.halves(hu * (1 << 32) + cw)
            new = _first_rows(h, len(self.half_unit))
            self.half_unit += hu[new].tolist()
            self.half_cw += cw[new].tolist()
            H = len(self.halves)
            self.half_w = _grow(self.half_w, H) + np.bincount(h, minlength=H)
            self.half_wd = _grow(self.half_wd, H) + np.bincount(h, weights=d, minlength=H)

    def regressor_sums(self, design_keys: list[tuple], U: int, order: np.ndarray) -> np.ndarray:
        """(units x columns) sums of the design's columns (keys of ``design_columns``),
        units put in ``order``."""
        S = np.zeros((U, len(design_keys)))
        for j, (kind, v) in enumerate(design_keys):
            if kind == "num":
                if v in self.num:
                    S[:, j] = _grow(self.num[v], U)
            elif kind in self.lev and v < self.lev[kind].shape[1]:
                S[:, j] = _grow(self.lev[kind][:, v], U)
        return S[order]

    def counts(self, U: int, order: np.ndarray) -> tuple[np.ndarray, ...]:
        """Person-months, exits, quality sum and count per unit, in ``order``."""
        return tuple(_grow(a, U)[order] for a in (self.n, self.exits, self.qsum, self.qn))

    def fe_counts(self, key_info: np.ndarray, muni_labels: np.ndarray,
                  region_labels: np.ndarray, fit: ModelFit, U: int, rank: np.ndarray):
        """Person-months per unit x fitted region-month effect (``cnt``), x fitted
        municipality effect where its region-month is fitted too (``mcnt``), and those
        (``covered``); units by ``rank`` (first-appearance code -> row)."""
        pu = rank[np.asarray(self.pair_unit, dtype="int64")]
        info = key_info[np.asarray(self.pair_key, dtype="int64")]
        rm = pd.Index(fit.regmonths).get_indexer(
            [f"{region_labels[r]}:{t}" for r, t in zip(info[:, 1], info[:, 2])])
        m = pd.Index(fit.munis).get_indexer(muni_labels[info[:, 0]])
        w = self.pair_n
        have = rm >= 0
        R, M = len(fit.regmonths), len(fit.munis)
        cnt = np.bincount(pu[have] * R + rm[have], weights=w[have],
                          minlength=U * R).reshape(U, R)
        hm = have & (m >= 0)
        mcnt = np.bincount(pu[hm] * M + m[hm], weights=w[hm], minlength=U * M).reshape(U, M)
        return cnt, mcnt, np.bincount(pu[hm], weights=w[hm], minlength=U)


class DesignPass(_Screen):
    """One pass over the batches: the model's raw Gram sums over the fitted rows
    (``sample``, from :meth:`sample_lead`) and, through :meth:`rows`, whatever sums per
    unit the caller keeps (module notes). The labour-market columns are judged on every
    person-month (``_Screen.judge_lm``), as ``frames.lm_controls`` judges the panel."""

    def __init__(self, params: EstimateParams, lm: list[str], cluster_col: str) -> None:
        super().__init__(lm)
        self.params, self.cluster_col = params, cluster_col
        self.gs = GramSums()
        self.levels: dict[str, _Codes] = {}
        self.factor_of: dict[str, str] = {}
        self.numeric: list[str] = []
        self.munis, self.regions, self.keys = _Codes(), _Codes(), _Codes()
        self.key_info: list[tuple[int, int, int]] = []   # (muni code, region code, t)

    def sample_lead(self, b: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The batch's rows eligible for the fit (before the regressors' own missing values)
        and the model's leading columns (outcome, quality) on every row."""
        raise NotImplementedError

    def rows(self, b, t, muni, key, num, cats, levels) -> None:
        """Add the batch's rows to the caller's sums (``muni`` and ``key`` codes)."""
        raise NotImplementedError

    def take(self, b: pd.DataFrame) -> None:
        d = build_design(b, self.params, lm=self.lm)
        if not self.factor_of:
            self.factor_of, self.numeric = d.factor_of, list(d.numeric)
        cats = {var: self.levels.setdefault(var, _Codes())(
            pd.Index(labels))[codes] for var, (codes, labels) in d.cats.items()}
        num = dict(d.numeric)
        self.judge_lm(num)  # on every person-month; a gap set to 0 (dropped later)
        t = b["t"].to_numpy(dtype="int64")
        sample, lead = self.sample_lead(b)
        for c, v in d.numeric.items():
            if c not in self.lm:
                sample &= np.isfinite(v)
        muni = b["municipality"].astype(str)
        region = b["region"].astype(str)
        s = np.flatnonzero(sample)
        self.gs.add({**{c: v[s] for c, v in lead.items()}, **{c: v[s] for c, v in num.items()}},
                    {var: c[s] for var, c in cats.items()},
                    b[self.cluster_col].astype(str).iloc[s], muni.iloc[s], region.iloc[s], t[s])
        m = self.munis(muni)
        reg = self.regions(region)
        key = self.keys((m * (1 << 24) + reg) * (1 << 24) + (t + (1 << 23)))
        new = _first_rows(key, len(self.key_info))
        self.key_info += zip(m[new].tolist(), reg[new].tolist(), t[new].tolist())
        self.rows(b, t, m, key, num, cats, {var: len(c) for var, c in self.levels.items()})

    def key_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key_info (K, 3), municipality labels, region labels)."""
        return (np.asarray(self.key_info, dtype="int64").reshape(-1, 3),
                np.asarray(self.munis.values, dtype=object).astype(str),
                np.asarray(self.regions.values, dtype=object).astype(str))


def _batches(path: Path, columns: list[str], batch_rows: int):
    yield from io.iter_batches(path, columns, batch_rows)


def _t_range(path: Path) -> tuple[int, int]:
    """The panel's first and last month, from the row groups' statistics (no data read)
    when every row group has them, else from the ``t`` column read in batches."""
    f = pq.ParquetFile(path)
    j = f.schema_arrow.get_field_index("t")
    stats = [f.metadata.row_group(i).column(j).statistics for i in range(f.num_row_groups)]
    if stats and all(s is not None and s.has_min_max for s in stats):
        return int(min(s.min for s in stats)), int(max(s.max for s in stats))
    import pyarrow.compute as pc

    lo, hi = None, None
    for batch in f.iter_batches(columns=["t"]):
        mm = pc.min_max(batch.column(0)).as_py()
        if mm["min"] is not None:
            lo = mm["min"] if lo is None else min(lo, mm["min"])
            hi = mm["max"] if hi is None else max(hi, mm["max"])
    if lo is None:
        raise ValueError("decompose: fewer than two person-months to fit")
    return int(lo), int(hi)


def _level_order(var: str, labels: np.ndarray) -> np.ndarray:
    """Global level codes in the in-memory design's label order (``design._label_codes``
    sorts labels as text, ``design._int_codes`` as integers)."""
    key = [int(v) for v in labels] if var in INT_CODED else [str(v) for v in labels]
    return np.asarray(sorted(range(len(labels)), key=lambda i: key[i]), dtype="int64")


def design_columns(p: DesignPass, lm_keep: list[str]) -> tuple[Design, list[tuple]]:
    """The model's columns as ``Design.choose_levels`` fixes them on the fitted rows, and
    each column's key in the sums (``("num", name)`` or ``(variable, level code)``)."""
    numeric = [c for c in p.numeric if c not in p.lm or c in lm_keep]
    cols, keys, dummy = list(numeric), [("num", c) for c in numeric], {}
    for var, codes in p.levels.items():
        labels = codes.values
        order = _level_order(var, labels)
        counts = np.array([p.gs.count((var, int(lv))) if (var, int(lv)) in p.gs.col else 0.0
                           for lv in order])
        present = order[counts > 0]
        if len(present) == 0:
            continue
        ref = present[int(np.argmax(counts[counts > 0]))]
        for lv in present[present != ref]:
            name = f"{var}[{labels[lv]}]"
            cols.append(name)
            keys.append((var, int(lv)))
            dummy[name] = (var, int(lv))
    factor_of = {c: f for c, f in p.factor_of.items() if c not in p.lm or c in lm_keep}
    return Design({}, {}, factor_of, cols, dummy), keys


def _counts(path: Path) -> str:
    """The SQL of a group's distinct clients (a missing id counting once) and distinct
    caseworkers (none missing; 0 without the column) in the panel file ``path``."""
    cw = ("count(DISTINCT caseworker_key)"
          if "caseworker_key" in pq.ParquetFile(path).schema_arrow.names else "0")
    return ("count(DISTINCT client_id) + max(CASE WHEN client_id IS NULL THEN 1 ELSE 0 "
            f"END), {cw}")


def distinct_counts(path: Path, group: str | tuple[str, ...], where: str = "TRUE", args=(),
                    total: bool = False) -> dict:
    """{value of the SQL expression ``group``: (distinct clients, distinct caseworkers)}
    over the rows of the panel file ``path`` that ``where`` keeps (``args`` its
    parameters), counted by DuckDB out of core (its spill in a temporary folder); with
    ``total`` also all those rows together, under the key None. A missing client id
    counts once and a missing caseworker not at all, as the in-memory counts on integer
    codes do; with ``total`` the total takes the key None, so a group whose value is
    missing is then not returned. ``group`` a tuple of expressions: keyed by the tuple of
    their values (grouping by two columns rather than by their values joined into one
    text, made for every person-month: nationally 14 -> 6 CPU s for municipality x
    year)."""
    exprs = (group,) if isinstance(group, str) else tuple(group)
    keys = ", ".join(f"{e} AS impact_g{i}" for i, e in enumerate(exprs))
    cols = ", ".join(f"impact_g{i}" for i in range(len(exprs)))
    by = f"GROUPING SETS (({cols}), ())" if total else cols
    with spilling("impact-distinct-") as con:
        rows = con.execute(
            f"SELECT {keys}, GROUPING({cols}) AS whole, {_counts(path)} FROM read_parquet(?) "
            f"WHERE {where} GROUP BY {by}", [str(path), *args]).fetchall()
    n = len(exprs)
    out = {r[0] if isinstance(group, str) else tuple(r[:n]): (r[n + 1], r[n + 2])
           for r in rows if not r[n]}
    out.update({None: (r[n + 1], r[n + 2]) for r in rows if r[n]})   # the total, if asked
    return out


def distinct_counts_by_span(path: Path, group: str, spans) -> list[dict]:
    """``distinct_counts(path, group, "t BETWEEN ? AND ?", span, total=True)`` for each
    ``(first, last)`` month span of ``spans`` (they may overlap), in one scan of the file:
    its rows joined on ``t`` to a table of (span, month) for every month of every span. A
    query per span scanned the file as many times (nationally, ten years: 6.3 -> 4.0 s,
    the same counts). A span without rows gets an empty dict."""
    spans = [(int(a), int(b)) for a, b in spans]
    months = [(i, t) for i, (a, b) in enumerate(spans) for t in range(a, b + 1)]
    out: list[dict] = [{} for _ in spans]
    if not months:
        return out
    with spilling("impact-distinct-") as con:
        con.register("span_months", pa.table({"span": [i for i, _ in months],
                                              "month": [t for _, t in months]}))
        rows = con.execute(
            f"SELECT s.span, {group} AS g, GROUPING({group}) AS whole, {_counts(path)} "
            "FROM read_parquet(?) AS p JOIN span_months AS s ON p.t = s.month "
            f"GROUP BY GROUPING SETS ((s.span, {group}), (s.span))", [str(path)]).fetchall()
    for i, g, whole, c, w in rows:
        out[i][None if whole else g] = (c, w)
    return out
