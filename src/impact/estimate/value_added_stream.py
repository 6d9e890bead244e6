"""Caseworker and team value-added straight from the panel's Parquet file, in two passes.

Notes
-----
``value_added.value_added`` holds the design matrix A = [100 y, controls, labour market]
of every person-month with a unit. What it needs of A adds up over rows:

1. **Covariate coefficients g.** The within-unit g (or pooled) is the regression of the
   demeaned y on the demeaned X, unit and region-month effects projected out at the level
   of unit x region-month cells. That projection follows from the raw Gram matrix of A
   and A's sums per cell (``cgram.demean_grams``, one cluster), which the first pass adds
   up (``quality_stream.GramSums``, the cells keyed unit x region-month). A categorical
   control's left-out level (its modal one) and which labour-market columns are controls
   (complete and varying among the rows with a unit) are decided after the pass, as the
   2SLS pass does; the person-months of each unit x spell pair, the modal municipality of
   each unit and its distinct clients and caseworkers (DuckDB) are counted on the way.
2. **Residual sums.** The residual of a row is ``r = y - x'g`` minus its region-month
   mean (``value_added._residuals`` adds the cell means it took out back in, so it is
   exactly that), and the region-month means of A's columns are sums of the cell sums. A
   second pass adds r up per unit x spell: S_js, from which ``value_added.spell_result``
   computes everything else, as in memory. Pass 1 keeps, in a temporary file, which
   rows it used and their pair, region-month and categorical level codes
   (``_RowCodes``), so pass 2 reads only the numeric columns and hashes no string.

Pairs and spells are numbered in order of first appearance in the file, as the in-memory
codes are, so the split-sample check (odd and even spell codes) and the MixedLM's blocks
are the same. Memory: one batch, the k x k Gram matrix, k sums per cell and a few numbers
per unit x spell pair; time linear in the person-months.
``tests/estimate/test_value_added_stream.py`` compares every unit's numbers and the
summary with ``value_added`` to 1e-8.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from impact import io
from impact.distinct import ClientCodes, DistinctCounter, local_codes
from impact.estimate.cgram import demean_grams
from impact.estimate.frames import _DUR_LABELS
from impact.estimate.frames import age_band, duration_band_index, lm_candidates, lm_usable
from impact.estimate.frames import inflow_rows, month_index, warn
from impact.estimate.hazard_stream import _small
from impact.estimate.linalg import independent_columns
from impact.estimate.params import CATEGORICAL_CONTROLS, DEFAULT_CONTROLS
from impact.estimate.quality_stream import BATCH_ROWS, GramSums, _Codes
from impact.estimate.sums import _first_rows
from impact.estimate.value_added import (
    UnitSpells, ValueAddedResult, _check_df, check_inputs, spell_result, value_added_reads,
)

__all__ = ["value_added_file"]

_T = 1 << 20
_MISSING = (1 << 31) - 1   # the code of a missing client id or caseworker, as a value
_BAND_LABELS = np.asarray(_DUR_LABELS, dtype=object)   # the duration bands', by index


def _categorical(c: str) -> bool:
    return c in ("age_band", "duration_band") or c in CATEGORICAL_CONTROLS


class _Batch:
    """One batch's rows with a unit: outcome, controls (a categorical one as first-
    appearance codes kept across batches), labour-market candidates, keys, and which rows
    are complete (finite outcome and numeric controls)."""

    def __init__(self, df: pd.DataFrame, key: str, controls, lm, codes: dict) -> None:
        has = df[key].notna().to_numpy()
        self.has = has
        self.n_no_unit = int((~has).sum())
        s = df.loc[has].reset_index(drop=True)
        self.s = s
        self.num = {"y": pd.to_numeric(s["exit_work"]).to_numpy(dtype="float64") * 100.0}
        self.cats = {}
        for c in controls:
            if _categorical(c):
                # the age bands as their categorical (first-appearance codes as of the
                # labels; made an object array first, they took 27 ms a batch); the
                # duration bands' labels from their index's distinct values (hashing
                # the label of every row took 10-12 ms a national batch, this 1.6)
                into = codes.setdefault(c, _Codes())
                if c == "duration_band":
                    local, at = pd.factorize(duration_band_index(s["duration"]))
                    self.cats[c] = into.of_distinct(local, _BAND_LABELS[at])
                else:
                    self.cats[c] = into(age_band(s["age"]) if c == "age_band" else s[c])
            else:
                self.num[c] = pd.to_numeric(s[c], errors="coerce").to_numpy(dtype="float64")
        self.lm = {c: pd.to_numeric(s[c], errors="coerce").to_numpy(dtype="float64")
                   for c in lm}
        self.ok = np.ones(len(s), dtype=bool)
        for v in self.num.values():
            self.ok &= np.isfinite(v)
        t = s["t"].to_numpy("int64") if "t" in s else month_index(s["month"]).astype("int64")
        self.t = t


def value_added_file(path: str | Path, level: Literal["caseworker", "team"] = "caseworker",
                     *, controls: Sequence[str] = DEFAULT_CONTROLS,
                     lm: Sequence[str] | None = None,
                     covariates: Literal["within", "pooled"] = "within",
                     noise: Literal["pooled", "unit"] = "pooled", alpha: float = 0.05,
                     mixedlm: bool = True, sample: Literal["all", "inflow"] = "all",
                     batch_rows: int = BATCH_ROWS) -> ValueAddedResult:
    """``value_added`` (the same result; arguments alike) on the panel file ``path`` read
    in batches, twice (module notes); ``sample="inflow"``: of its person-months with
    ``left_truncated == 0`` only, as a specification's inflow sample."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    key = check_inputs(schema, level, controls, covariates, noise)
    cands = lm_candidates(schema, lm)
    reads = value_added_reads(schema, controls)
    if sample == "inflow":
        reads = list(dict.fromkeys(reads + ["left_truncated"]))
    codes: dict[str, _Codes] = {}
    cat_counts: dict[str, np.ndarray] = {}
    lm_state = {c: [True, np.inf, -np.inf] for c in cands}  # complete, min, max
    units, regions, spells, pairs, um = _Codes(), _Codes(), _Codes(), _Codes(), _Codes()
    munis, rms = _Codes(), _Codes()
    # each pair's unit and spell, per batch (arrays: as Python lists of ints they were
    # 0.23 GB of the caseworker level's 3.2 million pairs nationally)
    pair_unit: list[np.ndarray] = []
    pair_spell: list[np.ndarray] = []
    n_pairs = 0
    pair_n, um_n = _Sums(), _Sums()
    gs = GramSums()
    n_no_unit = n_missing = 0
    # distinct clients (and, for teams, caseworkers) per unit; a missing value counts as
    # a value of its own, as in memory
    extra = [c for c in ("client_id", "caseworker_key") if c in schema and c != key]
    values = {c: ClientCodes() for c in extra}
    distinct_n = {c: DistinctCounter(1 << 32) for c in extra}
    rows = _RowCodes()   # pass 1's codes of the rows it used, for pass 2
    for df in _batches(path, reads, batch_rows, sample):
        b = _Batch(df, key, controls, cands, codes)
        n_no_unit += b.n_no_unit
        for c, v in b.cats.items():  # the modal level: among the rows with a unit
            cnt = np.bincount(v, minlength=len(codes[c]))
            old = cat_counts.get(c, np.zeros(0))
            cat_counts[c] = np.concatenate([old, np.zeros(len(cnt) - len(old))]) + cnt
        for c, v in b.lm.items():
            st = lm_state[c]
            fin = np.isfinite(v)
            st[0] = st[0] and bool(fin.all())
            if fin.any():
                st[1], st[2] = min(st[1], v[fin].min()), max(st[2], v[fin].max())
        ok = b.ok
        n_missing += int((~ok).sum())
        used = np.zeros(len(df), dtype=bool)
        used[np.flatnonzero(b.has)[ok]] = True
        if not ok.any():
            rows.put(used, [])
            continue
        s = b.s.loc[ok].reset_index(drop=True)
        unit = units(s[key].astype(str))
        reg = regions(s["region"].astype(str))
        rm = rms(reg * (4 * _T) + (b.t[ok] + _T))   # region-month, numbered as seen
        cols = {c: v[ok] for c, v in b.num.items()}
        cols.update({f"lm:{c}": np.nan_to_num(v[ok]) for c, v in b.lm.items()})
        cats = {c: v[ok] for c, v in b.cats.items()}
        gs.add(cols, cats, np.zeros(len(s), int), s[key].astype(str),
               s["region"].astype(str), rm)
        sp = spells(s["spell_id"])
        pc = pairs(unit * (1 << 40) + sp)
        new = _first_rows(pc, n_pairs)            # the first row of each new pair
        pair_unit.append(unit[new].astype("int64"))
        pair_spell.append(sp[new].astype("int64"))
        n_pairs += len(new)
        pair_n.add(pc, len(pairs))
        rows.put(used, [pc, rm, *cats.values()])
        mc = munis(s["municipality"].astype(str))
        umc = um(unit * (1 << 32) + mc)
        um_n.add(umc, len(um))
        for c in extra:
            v = values[c](pa.array(s[c].array, from_pandas=True))
            distinct_n[c].add(unit, np.where(v < 0, _MISSING, v))
    counts = {c: distinct_n[c].counts(len(units)) for c in extra}
    if n_no_unit:
        warn(f"value_added: {n_no_unit} person-months without {key} dropped")
    if n_missing:
        warn(f"value_added: {n_missing} person-months missing exit_work or controls dropped")
    if gs.n_obs == 0:
        raise ValueError(f"value_added: no person-month with a {level} and complete data")
    # unit codes as ``pd.factorize(sort=True)``: sorted labels
    first_labels = np.asarray(units.values, dtype=object)
    names = np.sort(first_labels)
    to_sorted = pd.Index(names).get_indexer(first_labels)
    pair_unit = np.concatenate(pair_unit) if pair_unit else np.zeros(0, np.int64)
    pair_spell = np.concatenate(pair_spell) if pair_spell else np.zeros(0, np.int64)
    g = to_sorted[pair_unit]
    pair_n = pair_n.values
    _check_df(g, pair_n, len(names), level)
    lm_keep = [c for c in cands
               if lm_usable(lm_state[c][0] and lm_state[c][2] > lm_state[c][1], c)]
    sel = [gs.col[("num", "y")]]
    for c in controls:
        if _categorical(c):
            cnt = cat_counts[c]
            # a level seen only in rows with a missing value has no column: in memory an
            # all-zero one, which the collinearity rule drops
            sel += [gs.col[(c, k)] for k in np.flatnonzero(cnt)
                    if k != np.argmax(cnt) and (c, k) in gs.col]
        else:
            sel.append(gs.col[("num", c)])
    sel += [gs.col[("num", f"lm:{c}")] for c in lm_keep]
    v, rm_mean = _coefficients(gs, sel, covariates == "within")
    S = _residual_sums(path, batch_rows, sample, controls, cands, rows, gs, sel, v, rm_mean,
                       n_pairs)
    rows.close()
    # modal municipality: the most person-months, ties to the last pair seen (in memory)
    um_codes = um.values.astype("int64")
    modal = pd.DataFrame({"u": to_sorted[um_codes >> 32], "m": um_codes & ((1 << 32) - 1),
                          "n": um_n.values})
    modal = modal.sort_values(["u", "n"], kind="stable").drop_duplicates("u", keep="last")
    muni_names = np.asarray(munis.values, dtype=object)

    def distinct(col: str) -> np.ndarray:
        if col == key:
            return np.ones(len(names))
        if col not in counts:
            return np.full(len(names), np.nan)
        out = np.zeros(len(names))
        out[to_sorted] = counts[col]    # first-appearance unit codes to sorted ones
        return out

    sp = UnitSpells(names, g, pair_spell, pair_n, S,
                    muni_names[modal["m"].to_numpy()], distinct("client_id"),
                    distinct("caseworker_key"), n_no_unit, n_missing)
    return spell_result(sp, level, controls=controls, covariates=covariates, noise=noise,
                        alpha=alpha, mixedlm=mixedlm)


class _Sums:
    """Sums per code 0..size-1 that grow with the codes seen (capacity doubling: adding a
    batch costs its rows, not the codes seen before)."""

    def __init__(self) -> None:
        self.a, self.size = np.zeros(1024), 0

    def add(self, codes: np.ndarray, size: int, weights: np.ndarray | None = None) -> None:
        if size > len(self.a):
            a = np.zeros(max(size, 2 * len(self.a)))
            a[:len(self.a)] = self.a
            self.a = a
        u, inv = local_codes(codes)
        self.a[u] += np.bincount(inv, weights=weights)
        self.size = max(self.size, size)

    @property
    def values(self) -> np.ndarray:
        return self.a[:self.size]


def _batches(path: Path, columns: list[str], batch_rows: int, sample: str):
    for df in io.iter_batches(path, columns, batch_rows):
        if sample == "inflow":
            df = df.loc[inflow_rows(df)].reset_index(drop=True)
        yield df


def _coefficients(gs: GramSums, sel: list[int], within: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """v (A v = y - x'g, ``value_added._residuals``'s rule for the columns kept) and the
    region-month means of A v, indexed by the region-month code (the cells' ``t``)."""
    raw = gs.raw(sel, release=True)   # pass 2 needs only ``gs.col``
    cells = gs.cell_table()
    fe = ["municipality", "regmonth"] if within else ["regmonth"]
    G = demean_grams(raw, cells, fe, sums=False).gram
    v = np.eye(G.shape[0])[0]
    ex = np.arange(1, G.shape[0])
    d = np.sqrt(np.maximum(np.diag(G)[ex], 1e-300))
    ex = ex[independent_columns(G[np.ix_(ex, ex)] / np.outer(d, d))] if ex.size else ex
    if ex.size:
        v[ex] = -np.linalg.solve(G[np.ix_(ex, ex)], G[ex, 0])
    rm = cells["t"].to_numpy(dtype="int64")[raw.pair_cell]      # region-month of each cell
    num = np.bincount(rm, weights=raw.pair_sums @ v)
    den = np.bincount(rm, weights=raw.pair_count)
    with np.errstate(invalid="ignore"):
        return v, num / den


def _residual_sums(path, batch_rows, sample, controls, cands, rows: _RowCodes, gs, sel, v,
                   rm_mean, n_pairs) -> np.ndarray:
    """Pass 2: the residual sums S_js per unit x spell pair (module notes), from the
    numeric columns of the file and pass 1's codes of the rows it used."""
    S = _Sums()
    inv_col = {j: name for name, j in gs.col.items()}
    numeric = [c for c in controls if not _categorical(c)]
    reads = list(dict.fromkeys(["exit_work", *numeric, *cands]
                               + (["left_truncated"] if sample == "inflow" else [])))
    cat_names = [c for c in controls if _categorical(c)]   # ``_Batch.cats``' order
    # the same file read in batches of the same size: the same batches (else an error)
    for df, (used, codes) in zip(_batches(path, reads, batch_rows, sample), rows.read(),
                                 strict=True):
        if len(df) != len(used):
            raise RuntimeError("value_added: the panel file changed between its two passes")
        if not used.any():
            continue
        pc, rm = codes[0], codes[1]
        cats = dict(zip(cat_names, codes[2:]))

        def num(c: str) -> np.ndarray:
            return pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64")[used]

        r = np.zeros(int(used.sum()))
        for coef, j in zip(v, sel):
            name = inv_col[j]
            if name[0] == "num":
                c = name[1]
                x = (num("exit_work") * 100.0 if c == "y" else
                     np.nan_to_num(num(c[3:])) if c.startswith("lm:") else num(c))
            else:
                x = (cats[name[0]] == name[1]).astype("float64")
            r += coef * x
        r -= rm_mean[rm]
        S.add(pc, n_pairs, weights=r)
    return S.values


class _RowCodes:
    """Pass 1's codes of the rows it used, kept for pass 2 in an unnamed temporary file:
    per batch, which of its rows were used (a bit each) and, for those, the pair and
    region-month codes and each categorical control's level codes (in the order of
    ``controls``), each array in the narrowest integer type that holds it
    (``hazard_stream._small``; about 11 bytes a person-month with five categorical
    controls)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="impact-va-")
        self.index: list[tuple[int, int, list[np.dtype]]] = []  # rows, used, array types

    def put(self, used: np.ndarray, codes: list[np.ndarray]) -> None:
        self.file.write(np.packbits(used).tobytes())
        types = []
        for a in codes:  # each in the narrowest integer type (the hazard's cells' rule)
            a = _small(np.asarray(a, dtype="int64"))
            self.file.write(np.ascontiguousarray(a).tobytes())
            types.append(a.dtype)
        self.index.append((len(used), int(used.sum()), types))

    def read(self):
        """(used, codes as int64) per batch, in the order they were put."""
        self.file.flush()
        self.file.seek(0)
        for n, m, types in self.index:
            used = np.unpackbits(np.frombuffer(self.file.read((n + 7) // 8), dtype=np.uint8),
                                 count=n).astype(bool)
            yield used, [np.frombuffer(self.file.read(t.itemsize * m), dtype=t).astype("int64")
                         for t in types]

    def close(self) -> None:
        self.file.close()
