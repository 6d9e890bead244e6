"""Write ``person_months`` in (municipality, spell, month) order without sorting person-months.

The panel is defined by the view of :func:`impact.panel.build.build_panel`: pieces expanded
to months and hash-joined to the municipality x month context and to the caseworker x
month quality. Hash joins keep no row order (DuckDB's "Order Preservation": a JOIN does not
preserve it), so the file needed ``ORDER BY piece_order, t`` over every person-month:
nationally (63.4 million rows, 33 columns) the sort was about 80 of the 180 CPU seconds
of writing the file, and the joins most of the rest (docs/performance.md, thirtieth round).

Here the pieces (spell-sized) are read once, in ``piece_order``; the month-varying columns
are looked up by position in dense (key x month) arrays of the context and quality tables
(municipality- and caseworker-months, far fewer than person-months); and each chunk of
pieces is repeated over its months. The rows come out in (piece_order, t) order by
construction and are written by pyarrow in row groups of DuckDB's size, so a reader's
batches fall where they fell before. Values, types, nulls and order are the view's
(``tests/panel/test_panel_expand.py`` compares the two on every kind of input); every
expression below is the view's (``build._person_months_sql``) in NumPy.

Memory: the pieces' columns (spell-sized, outside DuckDB's ``memory_limit``), the dense
arrays and at most three chunks of rows of about a million (one being made, one being
written, the rows left over for the next row group); no person-month-sized array.

Compression: snappy. Read back by pyarrow (every pass over the panel), pyarrow's zstd
pages decoded about 30% slower than DuckDB's zstd, and snappy's as fast or faster (a
national pass over 16 columns: 3.5 s DuckDB's zstd, 5.7 s pyarrow's zstd, 3.3 s snappy);
the file is half as large again (372 against 243 MB nationally).

Statistics: the min and max of every column but the identifiers of clients, spells and
staff (``spell_id``, ``client_id``, ``*_key``): random text whose ranges skip no row
group, and whose comparisons were a sixth of the writer's CPU time (``_statistics``;
measured on 9.8 million national rows: 3.5-3.9 -> 3.2-3.6 CPU s). The writer is what
the stage waits for while the next chunk is made.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from impact.panel._sql import Inputs
from impact.panel.context import lm_columns
from impact.panel.params import PanelParams

__all__ = ["PanelSource", "write_person_months", "ROW_GROUP_ROWS"]

#: rows per row group: DuckDB's default ``ROW_GROUP_SIZE``, which the file had when DuckDB
#: wrote it; ``io.iter_batches`` cuts text reads at row groups, so keeping the size keeps
#: every pass's batches (and so its sums, to the bit)
ROW_GROUP_ROWS = 122_880
#: row groups per chunk of rows made at a time (about a million rows)
_CHUNK_GROUPS = 8
#: the piece columns copied to every month of the piece, as the view names them
_CARRIED = ("spell_id", "client_id", "municipality", "region", "sex", "education_level",
            "household", "prior_benefit_months", "ladder_step", "caseworker_key",
            "team_key", "intake_caseworker_key")


@dataclass(frozen=True)
class PanelSource:
    """What :func:`write_person_months` reads: the connection and names of the tables
    :func:`~impact.panel.build.build_panel` made, and its view of the person-months."""

    con: duckdb.DuckDBPyConnection
    inputs: Inputs
    params: PanelParams
    quality: str | None
    view: str


def _unique(con, table: str, keys: str) -> bool:
    n, d = con.sql(f"SELECT count(*), count(DISTINCT ({keys})) FROM {table}").fetchall()[0]
    return n == d


class _Dense:
    """Columns of a (key, t) table looked up by position: for each key x month of the
    window, the row holding it (or -1), so a column is taken at any rows' positions."""

    def __init__(self, con, table: str, key: str, ids: str, cols: list[str], t0: int, n_t: int):
        # keys numbered in SQL (``ids``: key -> i); rows outside the window never match
        data = con.sql(f"""
            SELECT k.i, CAST(x.t AS BIGINT) - {t0} AS dt, {', '.join(f'x.{c}' for c in cols)}
            FROM {table} x JOIN {ids} k ON k.k = x.{key}
            WHERE x.t BETWEEN {t0} AND {t0 + n_t - 1}
        """).to_arrow_table()
        n_keys = int(con.sql(f"SELECT count(*) FROM {ids}").fetchall()[0][0])
        at = data.column("i").to_numpy() * n_t + data.column("dt").to_numpy()
        # one spare position past the last, never held: where misses look (also when the
        # table has no row at all, e.g. no measurement of the instrument)
        self.row = np.full(n_keys * n_t + 1, -1, dtype=np.int64)
        self.row[at] = np.arange(len(at))
        self.miss = n_keys * n_t
        self.cols = {c: data.column(c).combine_chunks() for c in cols}

    def rows_at(self, where: np.ndarray, ok: np.ndarray) -> pa.Array:
        """The rows at flat positions ``where`` (key * months + month - t0); null where
        ``ok`` is False or no row holds the position (a LEFT JOIN's miss)."""
        idx = self.row[np.where(ok, where, self.miss)]
        return pa.array(idx, mask=idx < 0)

    def take(self, c: str, rows: pa.Array) -> pa.Array:
        return self.cols[c].take(rows)


def _ids(con, name: str, sql: str) -> str:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                f"SELECT k, CAST(row_number() OVER (ORDER BY k) - 1 AS BIGINT) AS i "
                f"FROM ({sql}) WHERE k IS NOT NULL")
    return name


def _first_days(t: np.ndarray) -> np.ndarray:
    """The first day of month ``t`` (= year * 12 + month - 1), as ``make_date`` gives it."""
    return (t - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")


def _int(a: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An integer column's values (0 where null) and validity."""
    return (a.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64),
            a.is_valid().to_numpy(zero_copy_only=False))


def _masked(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``values`` as an Arrow array, null where not ``valid``."""
    return pa.array(values, mask=~valid)


class _Expander:
    def __init__(self, src: PanelSource, schema: pa.Schema):
        con, inputs, p = src.con, src.inputs, src.params
        self.params = p
        self.t0, self.n_t = p.t_start, p.t_end - p.t_start + 1
        self.has_adoption = inputs.has("adoption")
        ctx = inputs.name("ctx")
        self.lm = lm_columns(p)
        mk = _ids(con, inputs.name("x_muni"), f"SELECT DISTINCT municipality AS k FROM {ctx}")
        self.ctx = _Dense(con, ctx, "municipality", mk,
                          [*self.lm, "shock_id", "shock_event_time"], self.t0, self.n_t)
        self.q = None
        joins, ids = f"LEFT JOIN {mk} m ON m.k = p.municipality", "m.i AS muni_i"
        if src.quality is not None:
            ck = _ids(con, inputs.name("x_cw"),
                      f"SELECT DISTINCT caseworker_key AS k FROM {src.quality}")
            self.q = _Dense(con, src.quality, "caseworker_key", ck,
                            ["quality_score", "quality_a", "quality_b", "quality_n"],
                            self.t0, self.n_t)
            joins += (f" LEFT JOIN {ck} c ON c.k = p.caseworker_key"
                      f" LEFT JOIN {ck} ci ON ci.k = p.intake_caseworker_key")
            ids += ", c.i AS cw_i, ci.i AS icw_i"
        carried = ", ".join(f"p.{c}" for c in _CARRIED)
        # the pieces in the file's order (ORDER BY: the only order DuckDB promises)
        self.pieces = con.sql(f"""
            SELECT {carried}, p.t_start, p.birth_year, p.t_exit, p.adopt_t, p.seg_lo, p.seg_hi,
                coalesce(p.exit_reason = 'work', false) AS to_work,
                coalesce(p.exit_reason = 'education', false) AS to_education, {ids}
            FROM {inputs.name('pieces')} p {joins}
            ORDER BY p.piece_order
        """).to_arrow_table()
        self.schema = self._required(schema)
        lo, _ = _int(self.pieces.column("seg_lo"))
        hi, _ = _int(self.pieces.column("seg_hi"))
        self.lo, self.length = lo, np.maximum(hi - lo + 1, 0)
        self.ends = np.cumsum(self.length)

    def _required(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` with the columns that cannot be null here marked so (written as
        Parquet's required columns, which a reader decodes without definition levels:
        a national pass over a text column about 0.3 -> 0.1 s): month, t and the exit
        flags always; a piece's column and what is made of it where the pieces have no
        null; ``quality_n`` and ``adopted`` where their table is there (a miss is 0)."""
        def whole(c: str) -> bool:
            return self.pieces.column(c).null_count == 0

        never = {"month", "t", "exit_work", "exit_any", "exit_education"}
        never |= {c for c in _CARRIED if whole(c)}
        if whole("t_start"):
            never |= {"duration", "left_truncated"}
        if whole("birth_year"):
            never.add("age")
        if whole("adopt_t"):
            never.add("adoption_month")
        if self.q is not None:
            never.add("quality_n")
        if self.has_adoption:
            never.add("adopted")
        return pa.schema([pa.field(f.name, f.type, f.name not in never) for f in schema])

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Piece ranges of about ``_CHUNK_GROUPS`` row groups each (whole pieces)."""
        step, start, n = ROW_GROUP_ROWS * _CHUNK_GROUPS, 0, len(self.length)
        done = 0
        while start < n:
            stop = int(np.searchsorted(self.ends, done + step, side="right"))
            stop = max(stop, start + 1)
            yield start, stop
            done = int(self.ends[stop - 1])
            start = stop

    def rows(self, start: int, stop: int) -> pa.Table:
        """The person-months of pieces ``start:stop``, as the view gives them."""
        part = self.pieces.slice(start, stop - start)
        length = self.length[start:stop]
        rep = np.repeat(np.arange(stop - start), length)
        first = np.cumsum(length) - length
        t = self.lo[start:stop][rep] + (np.arange(len(rep)) - first[rep])
        take = pa.array(rep)

        def carried(c: str) -> pa.Array:
            return part.column(c).combine_chunks().take(take)

        def per_row(c: str) -> tuple[np.ndarray, np.ndarray]:
            v, ok = _int(part.column(c))
            return v[rep], ok[rep]

        t_start, ts_ok = per_row("t_start")
        birth, b_ok = per_row("birth_year")
        t_exit, te_ok = per_row("t_exit")
        adopt_t, ad_ok = per_row("adopt_t")
        to_work = part.column("to_work").to_numpy(zero_copy_only=False)[rep]
        to_edu = part.column("to_education").to_numpy(zero_copy_only=False)[rep]
        exits = te_ok & (t == t_exit)
        muni_i, m_ok = per_row("muni_i")
        at_ctx = muni_i * self.n_t + (t - self.t0)
        in_win = (t >= self.t0) & (t < self.t0 + self.n_t)
        m_ok &= in_win
        cols: dict[str, pa.Array] = {c: carried(c) for c in _CARRIED}
        cols |= {
            "month": pa.array(_first_days(t)), "t": pa.array(t),
            "duration": _masked(t - t_start, ts_ok),
            # t // 12: t >= 0 (months since year 0), where DuckDB's // (which truncates)
            # and NumPy's (which floors) agree
            "age": _masked(t // 12 - birth, b_ok),
            "left_truncated": _masked((t_start < self.params.t_start).astype(np.int8), ts_ok),
            "exit_work": pa.array((exits & to_work).astype(np.int8)),
            "exit_any": pa.array(exits.astype(np.int8)),
            "exit_education": pa.array((exits & to_edu).astype(np.int8)),
            "adoption_month": _masked(_first_days(np.where(ad_ok, adopt_t, 1970 * 12)), ad_ok),
        }
        cols["adopted"] = (pa.array((ad_ok & (t >= adopt_t)).astype(np.int8))
                           if self.has_adoption else pa.nulls(len(t), pa.int8()))
        at = self.ctx.rows_at(at_ctx, m_ok)
        for c in [*self.lm, "shock_id", "shock_event_time"]:
            cols[c] = self.ctx.take(c, at)
        if self.q is None:
            for c in ("quality_score", "quality_a", "quality_b", "intake_quality_score"):
                cols[c] = pa.nulls(len(t), pa.float64())
            cols["quality_n"] = pa.nulls(len(t), pa.int32())
        else:
            cw_i, c_ok = per_row("cw_i")
            at = self.q.rows_at(cw_i * self.n_t + (t - self.t0), c_ok & in_win)
            for c in ("quality_score", "quality_a", "quality_b"):
                cols[c] = self.q.take(c, at)
            cols["quality_n"] = self.q.take("quality_n", at).fill_null(0)  # coalesce(, 0)
            icw_i, i_ok = per_row("icw_i")
            at = self.q.rows_at(icw_i * self.n_t + (t - self.t0), i_ok & in_win)
            cols["intake_quality_score"] = self.q.take("quality_score", at)
        arrays = [cols[f.name].cast(f.type) for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def write_person_months(src: PanelSource, path: str | Path, compression: str = "snappy") -> int:
    """Write the person-months of ``src`` (its view's rows, ordered by ``piece_order, t``,
    without the ``piece_order`` column) to the Parquet file ``path``; returns the rows.

    When the context or quality table has two rows for one key and month (then the view's
    joins repeat person-months: never from ``build_panel``), DuckDB writes the view itself.
    """
    con = src.con
    ordered = con.sql(f"SELECT * EXCLUDE (piece_order) FROM {src.view} ORDER BY piece_order, t")
    keyed = [(src.inputs.name("ctx"), "municipality, t")]
    if src.quality is not None:
        keyed.append((src.quality, "caseworker_key, t"))
    if not all(_unique(con, table, keys) for table, keys in keyed):
        ordered.write_parquet(str(path), compression=compression)
        return int(con.sql(f"SELECT count(*) FROM {src.view}").fetchall()[0][0])
    schema = ordered.limit(0).to_arrow_table().schema
    ex = _Expander(src, pa.schema([pa.field(f.name, f.type) for f in schema]))
    path = Path(path)
    part = path.with_name(path.name + ".part")
    try:
        _write_all(ex, part, compression)
    except BaseException:
        part.unlink(missing_ok=True)  # no complete-looking file of a failed write
        raise
    part.replace(path)
    return int(ex.ends[-1]) if len(ex.ends) else 0


def _statistics(schema: pa.Schema) -> list[str]:
    """The columns whose min and max the file keeps: all but the identifiers of clients,
    spells and staff (module notes). Those of a text column with few values
    (municipality, region, shock_id) let a reader skip row groups: the file is in
    municipality order."""
    return [f.name for f in schema
            if f.name not in ("spell_id", "client_id") and not f.name.endswith("_key")]


def _write_all(ex: _Expander, path: Path, compression: str) -> None:
    carry = None
    with pq.ParquetWriter(str(path), ex.schema, compression=compression,
                          write_statistics=_statistics(ex.schema),
                          store_schema=False) as out, ThreadPoolExecutor(1) as pool:
        # the next chunk is made while this one is written (both release the GIL)
        pending = None
        for start, stop in ex.chunks():
            nxt = pool.submit(ex.rows, start, stop)
            if pending is not None:
                carry = _write(out, carry, pending.result())
            pending = nxt
        if pending is not None:
            carry = _write(out, carry, pending.result())
        if carry is not None and carry.num_rows:
            out.write_table(carry, row_group_size=ROW_GROUP_ROWS)


def _write(out: pq.ParquetWriter, carry: pa.Table | None, table: pa.Table) -> pa.Table:
    """Write whole row groups of ``carry`` + ``table``; return the rows left over."""
    if carry is not None and carry.num_rows:
        table = pa.concat_tables([carry, table])
    whole = table.num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS
    if whole:
        out.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
    return table.slice(whole)
