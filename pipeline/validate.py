"""Stage `validate`: read the contract tables from ``--raw``, enforce the data contract,
and write typed Parquet, per-table rejects and the data-quality report.

The raw folder is only read, never written to.
"""

import argparse
import logging
from pathlib import Path

import pandas as pd

from impact import io
from impact.config import load_params
from impact.ingest import RawFolder
from impact.stage import run_stage
from impact.validate import ContractError, to_arrow, validate_tables
from impact.validate.result import mask_identifiers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--lineage", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rejects", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--report-md", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    data = params.data
    # each table read when it is validated, and freed after (``RawFolder``)
    raw = RawFolder(args.raw, csv_sep=data.csv_sep, decimal=data.decimal, encoding=data.encoding)
    lineage = pd.read_csv(args.lineage, dtype=str)
    try:
        result = validate_tables(raw, data, window=params.window, lineage=lineage)
    except ContractError as exc:
        if getattr(exc, "report", None):  # too many rejects: leave the report to read
            io.write_json(mask_identifiers(exc.report), args.report)
        raise

    out, rejects = io.clean_dir(args.out), io.clean_dir(args.rejects)
    for name, table in sorted(result.tables.items()):
        io.write_arrow(to_arrow(name, table), out / f"{name}.parquet")  # dates as date32
    io.write_json(result.manifest(), out / "manifest.json")
    for name, table in sorted(result.rejects.items()):
        io.write_parquet(table, rejects / f"{name}.parquet")
    # reports/ carries no identifier: quoted ids in the reasons are masked (data/rejects
    # keeps them, for the analyst)
    io.write_json(mask_identifiers(result.report), args.report)
    io.write_text(result.report_markdown(masked=True), args.report_md)
    logging.info("validated %s; %s rows rejected", ", ".join(sorted(result.tables)),
                 result.report.get("rejected_rows"))


if __name__ == "__main__":
    run_stage("validate", main)
