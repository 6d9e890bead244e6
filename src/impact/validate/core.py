"""``validate_tables``: raw contract tables in, typed tables + rejects + report out."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Callable, Iterator, Mapping

import pandas as pd

from impact.ingest.contract import REQUIRED_TABLES, TABLE_NAMES
from impact.ingest.errors import ContractError
from impact.validate.context import Context, TableOutcome, window_bounds
from impact.validate.labour_market import validate_labour_market
from impact.validate.lineage import build_code_map
from impact.validate.municipalities import validate_municipalities
from impact.validate.params import DataParams
from impact.validate.result import ValidationResult
from impact.validate.schemas import check_output
from impact.validate.spells import validate_assignments, validate_progress, validate_trajectories
from impact.validate.units import validate_adoption, validate_quality, validate_shocks

__all__ = ["validate_tables"]

#: Validators in dependency order: each may read what earlier ones put in the Context.
VALIDATORS: dict[str, Callable[[pd.DataFrame, Context], TableOutcome]] = {
    "municipalities": validate_municipalities,
    "trajectories": validate_trajectories,
    "caseworker_assignments": validate_assignments,
    "progress": validate_progress,
    "quality": validate_quality,
    "adoption": validate_adoption,
    "shocks": validate_shocks,
    "labour_market": validate_labour_market,
}
assert set(VALIDATORS) == set(TABLE_NAMES)


def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    params: DataParams,
    *,
    window: tuple[str, str] = ("2016-01", "2023-12"),
    lineage: pd.DataFrame,
) -> ValidationResult:
    """Check raw contract tables against the data contract and type them.

    Parameters
    ----------
    raw : mapping of str to DataFrame
        Tables as read by :func:`impact.ingest.read_raw_folder` (keys are contract
        table names, case-insensitive). Never modified. Each table is taken from it once,
        when it is validated, and not kept: an :class:`impact.ingest.RawFolder` reads
        its files one at a time then.
    params : DataParams
        ``classification_year`` and ``max_reject_share`` are used here.
    window : (str, str)
        ``panel.start``, ``panel.end`` ('YYYY-MM'): spells entirely outside are kept
        and counted; labour-market coverage is counted inside it.
    lineage : DataFrame
        The CBS merger lineage (``data/reference/cbs_gemeentelijke_herindelingen_lineage.csv``).

    Returns
    -------
    ValidationResult

    Raises
    ------
    ContractError
        On a structural fault (missing required table or column, a column of the wrong
        type throughout, duplicate keys) or when more than ``max_reject_share`` of one
        table's rows is rejected; the message names the table, file, column, value
        seen and what was expected. In the last case ``exc.report`` holds the report.
    """
    raw = _Lowered(raw)
    for name in REQUIRED_TABLES:
        if name not in raw:
            raise ContractError(
                f"required table '{name}' is missing: expected a file {name}.csv, "
                f"{name}.parquet, {name}.sav, {name}.dta or {name}.xlsx in the raw folder",
                table=name,
            )
    start, end = window_bounds(window)
    ctx = Context(codes=build_code_map(lineage, params.classification_year), start=start, end=end,
                  instrument_ranges=dict(params.instrument_ranges))
    outcomes = _run_validators(raw, ctx)
    for name, outcome in outcomes.items():
        check_output(name, outcome.table)
    report = _report(outcomes, raw, params, window)
    _check_share(outcomes, params, report)
    return ValidationResult(
        tables={k: o.table for k, o in outcomes.items()},
        rejects={k: o.rejects for k, o in outcomes.items()},
        report=report,
    )


#: Validators run in a second thread as soon as the one named has run: they read only
#: what it put in the Context (progress: the kept spells) and write nothing there. Their
#: tables are checked beside the others' (numpy, Arrow and pandas' hashing let go of the
#: interpreter): the national simulation's validators 23.4 -> 17.2 s. Their tables are
#: taken from ``raw`` in that thread from the start, beside the first validators (a
#: ``RawFolder`` reads the file then: the national ``progress``, 4 s).
_BESIDE = {"progress": "trajectories"}


def _run_validators(raw: Mapping[str, pd.DataFrame], ctx: Context) -> dict[str, TableOutcome]:
    """Every validator of a table in ``raw``, in ``VALIDATORS`` order but for ``_BESIDE``.
    The error raised is the one a run one after another would raise: that of the first
    table in that order whose validator fails (a table's reading counts as its
    validator's)."""
    from concurrent.futures import ThreadPoolExecutor

    order = [n for n in VALIDATORS if n in raw]
    outcomes: dict[str, TableOutcome] = {}
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="impact-validate") as pool:
        taken = {late: pool.submit(raw.__getitem__, late) for late, after in _BESIDE.items()
                 if late in raw and after in raw}
        later, beside = set(taken), {}
        for name in order:
            if name in later:
                continue
            try:
                outcomes[name] = VALIDATORS[name](raw[name], ctx)
            except Exception as exc:  # noqa: BLE001 (raised below, in table order)
                errors[name] = exc
                break
            for late, after in _BESIDE.items():
                if after == name and late in taken:
                    # handed over: the table is held by the task alone, and freed with it
                    beside[late] = pool.submit(_validate_taken, late, taken.pop(late), ctx)
        for name, future in beside.items():
            try:
                outcomes[name] = future.result()
            except Exception as exc:  # noqa: BLE001
                errors[name] = exc
    if errors:
        raise errors[min(errors, key=order.index)]
    for name in order:   # one whose predecessor was not given (trajectories is required)
        if name not in outcomes:
            outcomes[name] = VALIDATORS[name](raw[name], ctx)
    return {n: outcomes[n] for n in order}


def _validate_taken(name: str, table: Future, ctx: Context) -> TableOutcome:
    """``name``'s validator on the table ``table`` gives (read before, in this thread)."""
    return VALIDATORS[name](table.result(), ctx)


class _Lowered(Mapping[str, pd.DataFrame]):
    """``raw`` by lower-case stripped names (the last of two that give one name), its
    tables taken from it only when asked for."""

    def __init__(self, raw: Mapping[str, pd.DataFrame]) -> None:
        self._raw = raw
        self._keys = {str(k).strip().lower(): k for k in raw}

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self._raw[self._keys[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


#: What an absent optional table means for the analysis (the note in the report).
_SKIPPED = {
    "caseworker_assignments": "each spell keeps the caseworker of trajectories.caseworker_id "
                              "for all its months",
    "quality": "the quality analysis is skipped; the quality block of reports/metrics.json "
               "is null",
    "adoption": "the adoption analysis is skipped; the adoption block of reports/metrics.json "
                "is null",
    "shocks": "the shock analysis is skipped; the shock block of reports/metrics.json is null",
    "progress": "no intermediate results are analysed",
}
assert set(_SKIPPED) == set(TABLE_NAMES) - set(REQUIRED_TABLES)


def _report(outcomes: dict[str, TableOutcome], raw: Mapping[str, pd.DataFrame],
            params: DataParams, window: tuple[str, str]) -> dict:
    tables = {k: o.report for k, o in outcomes.items()}
    missing = [n for n in TABLE_NAMES if n not in raw]
    mappings: dict[tuple, dict] = {}
    for name, t in tables.items():
        for m in t.get("merger_mappings", []):
            k = (m["from"], m["to"])
            entry = mappings.setdefault(k, {**{x: m.get(x) for x in ("from", "from_name", "to", "to_name")},
                                            "rows": 0, "tables": []})
            entry["rows"] += int(m["rows"])
            if name not in entry["tables"]:
                entry["tables"].append(name)
    notes = [f"optional table '{n}' not given: {_SKIPPED[n]}" for n in missing]
    unknown = sorted(set(raw) - set(TABLE_NAMES))
    if unknown:
        notes.append(f"tables not in the data contract ignored: {', '.join(unknown)}")
    return {
        "classification_year": params.classification_year,
        "window": {"start": window[0], "end": window[1]},
        "max_reject_share": params.max_reject_share,
        "rows_read": sum(t["rows_read"] for t in tables.values()),
        "rows_kept": sum(t["rows_kept"] for t in tables.values()),
        "rejected_rows": sum(t["rows_rejected"] for t in tables.values()),
        "tables": tables,
        "merger_mappings": [mappings[k] for k in sorted(mappings)],
        "missing_optional_tables": missing,
        "notes": notes,
    }


def _check_share(outcomes: dict[str, TableOutcome], params: DataParams, report: dict) -> None:
    over = [
        (name, o) for name, o in outcomes.items()
        if o.report["reject_share"] > params.max_reject_share
    ]
    if not over:
        return
    parts = []
    for name, o in over:
        r = o.report
        rules = ", ".join(f"{k} {v}" for k, v in sorted(
            r["rejected_by_rule"].items(), key=lambda kv: -kv[1]))
        first = "; ".join(
            f"row {row.row}: {row.reason}" for row in o.rejects.head(3).itertuples()
        )
        parts.append(
            f"table '{name}' ({r['source']}): {r['rows_rejected']} of {r['rows_read']} rows "
            f"rejected ({r['reject_share']:.1%}), more than data.max_reject_share = "
            f"{params.max_reject_share:.1%}; by rule: {rules}; first: {first}"
        )
    raise ContractError(
        "too many rejected rows. " + " | ".join(parts)
        + ". Fix the input or raise data.max_reject_share in params.yaml.",
        table=over[0][0],
        report=report,
    )
