"""The `impact` command line.

``impact check DIR`` validates a folder of contract tables without running the pipeline
and prints a readable report (rich tables); exit code 0 when the data pass, 2 when they
do not. ``--json PATH`` writes the same report, or the error, as JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from impact import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="impact: separate process quality from labour-market luck.")
# A pipe or a log file gets a width that fits the report's tables (rich's default is 80).
console = Console(stderr=False, width=None if sys.stdout.isatty() else 132)


@app.callback()
def _main() -> None:
    """impact command line."""


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"impact {__version__}")


@app.command()
def sweep(
    panel: Annotated[Path, typer.Option(help="person-month panel")] = Path("data/panel/person_months.parquet"),
    validated: Annotated[Path, typer.Option(help="validated tables")] = Path("data/validated"),
    out: Annotated[Path, typer.Option(help="folder for <cell>/result.json")] = Path("data/sweep"),
    params: Annotated[Path, typer.Option(help="params.yaml")] = Path("params.yaml"),
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address (overrides compute.scheduler)")] = None,
) -> None:
    """Run every cell of the grid at once, in parallel: all local cores, or the Dask
    cluster that --scheduler, compute.scheduler or IMPACT_DASK_SCHEDULER names.

    Writes the same data/sweep/<cell>/result.json files as the DVC stages sweep@<cell>
    (outside DVC's bookkeeping: `dvc repro` reruns them unless you `dvc commit`).
    """
    import dataclasses

    from impact import io
    from impact.config import load_params
    from impact.sweep import run_grid

    p = load_params(params)
    compute = p.compute
    if scheduler:
        compute = dataclasses.replace(compute, scheduler=scheduler)
    results = run_grid(panel, validated, p.estimate, p.grid, compute)
    for r in results:
        folder = io.clean_dir(out / r["cell"])
        io.write_json(r, folder / "result.json")
    ok = sum(r["status"] == "ok" for r in results)
    console.print(f"{len(results)} grid cells, {ok} estimated, written to {out}/<cell>/")


@app.command()
def repro(
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1,
                                      help="stages run at once (within --memory-gb)")] = 2,
    force: Annotated[bool, typer.Option("--force", "-f", help="rerun every stage")] = False,
    memory_gb: Annotated[float | None, typer.Option(
        "--memory-gb", min=0,
        help="stages side by side only as far as their peaks (the last run's, or expected "
             "for the panel's size) fit in this many GB (default: half the machine's "
             "memory; 0: no limit)")] = None,
) -> None:
    """`dvc repro` with independent stages side by side (run in the project folder).

    The same stages, outputs and dvc.lock as `dvc repro`; each stage still runs through
    DVC. On a two-core machine the default pipeline takes a good deal less wall time.
    A stage whose peak memory (its last run's, or expected from its rate in dvc.yaml on a
    panel larger than at that run) would not fit beside the running ones waits.
    """
    from impact.procmem import default_memory_mb
    from impact.repro import run

    if not Path("dvc.yaml").exists():
        console.print("[red]impact repro: no dvc.yaml here; run it in the project folder[/red]")
        raise typer.Exit(2)
    budget = default_memory_mb() if memory_gb is None else (memory_gb * 1024 or None)
    raise typer.Exit(run(Path("."), jobs=jobs, force=force, memory_mb=budget))


@app.command("queue-status")
def queue_status() -> None:
    """Show `dvc queue status` and exit 1 when a queued experiment failed.

    `dvc exp run --run-all` and `dvc queue start` exit 0 even when an experiment fails;
    run this after the queue has finished (for example in a script or CI job).
    """
    import subprocess

    proc = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True)
    console.print(escape(proc.stdout.rstrip()))
    if proc.returncode != 0:
        console.print(escape(proc.stderr.rstrip()))
        raise typer.Exit(2)
    failed = [line.split()[1] if len(line.split()) > 1 else line
              for line in proc.stdout.splitlines() if " Failed" in line]
    if failed:
        console.print(f"[red]{len(failed)} experiment(s) failed: {', '.join(failed)}[/red] "
                      "(see `dvc queue logs <name>`)")
        raise typer.Exit(1)
    console.print("no queued experiment failed")


@app.command()
def check(
    directory: Annotated[Path, typer.Argument(help="folder with one file per contract table")],
    params: Annotated[Path, typer.Option(help="params.yaml to take data and panel settings from")] = Path("params.yaml"),
    lineage: Annotated[Optional[Path], typer.Option(help="CBS merger lineage CSV")] = None,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", help="also write the data-quality report (or the error) as JSON here")] = None,
) -> None:
    """Validate DIR against the data contract without running the pipeline.

    Prints what was read, kept and rejected per table, the rules that rejected rows
    with the first rows of each, the merger mappings applied and the notes. Exit code
    0 when the data meet the contract, 2 on a structural fault or when more than
    data.max_reject_share of a table's rows is rejected. DIR is only read.
    """
    import pandas as pd

    from impact.config import ConfigError, Params, load_params
    from impact.ingest import RawFolder
    from impact.validate import ContractError, validate_tables

    try:
        cfg = load_params(params) if params.exists() else Params(raw={})
        data = cfg.data
        if lineage is None:
            lineage = Path(__file__).resolve().parents[2] / "data/reference/cbs_gemeentelijke_herindelingen_lineage.csv"
        raw = RawFolder(directory, csv_sep=data.csv_sep, decimal=data.decimal,
                        encoding=data.encoding)
        result = validate_tables(raw, data, window=cfg.window, lineage=pd.read_csv(lineage, dtype=str))
    except (ContractError, ConfigError, FileNotFoundError) as exc:
        report = getattr(exc, "report", None)
        if report:
            _print_report(report)
        console.print(Panel(escape(str(exc)), title=f"[bold red]✗ {escape(str(directory))}: "
                            "the data do not meet the contract", title_align="left",
                            border_style="red"))
        if json_out is not None:
            _write_json(json_out, {
                "ok": False, "error": str(exc), "table": getattr(exc, "table", None),
                "column": getattr(exc, "column", None), "report": report,
            })
        raise typer.Exit(code=2)
    _print_report(result.report)
    if json_out is not None:
        _write_json(json_out, {"ok": True, "error": None, "report": result.report})
    console.print(f"[bold green]✓ {escape(str(directory))}: the data meet the contract[/] "
                  f"({result.report.get('rejected_rows', 0)} rows rejected)")


def _write_json(path: Path, obj: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _print_report(report: dict) -> None:
    """The data-quality report as rich tables: totals, rejects by rule, mappings, notes."""
    window = report.get("window", {})
    console.print(f"[bold]Data-quality report[/] (window {window.get('start')} .. {window.get('end')}, "
                  f"classification year {report.get('classification_year')}, "
                  f"threshold {report.get('max_reject_share', 0):.1%} per table)")
    summary = Table(box=box.SIMPLE_HEAD)
    for col, justify in (("table", "left"), ("file", "left"), ("read", "right"), ("kept", "right"),
                         ("rejected", "right"), ("share", "right")):
        summary.add_column(col, justify=justify, overflow="fold",
                           min_width=22 if col == "table" else None)
    limit = report.get("max_reject_share", 1.0)
    for name, t in report.get("tables", {}).items():
        share = t.get("reject_share", 0.0)
        style = "red" if share > limit else ("yellow" if t.get("rows_rejected") else "")
        summary.add_row(name, escape(str(t.get("source"))), f"{t.get('rows_read', 0):,}",
                        f"{t.get('rows_kept', 0):,}", f"{t.get('rows_rejected', 0):,}",
                        f"{share:.2%}", style=style)
    console.print(summary)
    rules = Table(box=box.SIMPLE_HEAD, title="Rejected rows by rule", title_justify="left")
    for col in ("table", "rule", "rows", "first rows (row in the file: reason)"):
        rules.add_column(col, overflow="fold")
    for name, t in report.get("tables", {}).items():
        examples = t.get("rejected_examples") or {}
        for rule, n in (t.get("rejected_by_rule") or {}).items():
            rules.add_row(name, rule, f"{n:,}", escape("\n".join(examples.get(rule, []))))
    if rules.row_count:
        console.print(rules)
    maps = report.get("merger_mappings") or []
    if maps:
        mt = Table(box=box.SIMPLE_HEAD, title="Municipal mergers: codes mapped to "
                   f"{report.get('classification_year')}", title_justify="left")
        for col in ("from", "", "to", "", "rows", "tables"):
            mt.add_column(col)
        for m in maps:
            mt.add_row(m["from"], escape(str(m.get("from_name") or "")), m["to"],
                       escape(str(m.get("to_name") or "")), f"{m['rows']:,}", ", ".join(m["tables"]))
        console.print(mt)
    notes = list(report.get("notes") or [])
    for name, t in report.get("tables", {}).items():
        notes += [f"{name}: {n}" for n in t.get("notes") or []]
        if t.get("extra_columns"):
            notes.append(f"{name}: extra columns kept: {', '.join(t['extra_columns'])}")
    for note in notes:
        console.print(f"  • {escape(note)}")


if __name__ == "__main__":  # pragma: no cover
    app()
