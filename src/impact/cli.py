"""The `impact` command line.

``impact check DIR`` validates a folder of contract tables without running the pipeline
and prints a readable report; exit code 0 when the data pass, 2 when they do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown

from impact import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="impact: separate process quality from labour-market luck.")
console = Console(stderr=False)


@app.callback()
def _main() -> None:
    """impact command line."""


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"impact {__version__}")


@app.command()
def check(
    directory: Annotated[Path, typer.Argument(help="folder with one file per contract table")],
    params: Annotated[Path, typer.Option(help="params.yaml to take data and panel settings from")] = Path("params.yaml"),
    lineage: Annotated[Optional[Path], typer.Option(help="CBS merger lineage CSV")] = None,
) -> None:
    """Validate DIR against the data contract without running the pipeline."""
    import pandas as pd

    from impact.config import ConfigError, Params, load_params
    from impact.ingest import read_raw_folder
    from impact.validate import ContractError, validate_tables

    try:
        cfg = load_params(params) if params.exists() else Params(raw={})
        data = cfg.data
        if lineage is None:
            lineage = Path(__file__).resolve().parents[2] / "data/reference/cbs_gemeentelijke_herindelingen_lineage.csv"
        raw = read_raw_folder(directory, csv_sep=data.csv_sep, decimal=data.decimal, encoding=data.encoding)
        result = validate_tables(raw, data, window=cfg.window, lineage=pd.read_csv(lineage, dtype=str))
    except (ContractError, ConfigError, FileNotFoundError) as exc:
        console.print(f"[bold red]✗ {directory}: the data do not meet the contract[/]")
        console.print(str(exc))
        raise typer.Exit(code=2)
    console.print(Markdown(result.report_markdown()))
    console.print(f"[bold green]✓ {directory}: the data meet the contract[/] "
                  f"({result.report.get('rejected_rows', 0)} rows rejected)")


if __name__ == "__main__":  # pragma: no cover
    app()
