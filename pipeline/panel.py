"""Stage `panel`: the person-month risk set and municipality-month cells (DuckDB)."""

import argparse
import logging
import tempfile
from pathlib import Path

from impact import io
from impact.config import load_params
from impact.panel import build_panel, connect
from impact.panel.expand import write_person_months
from impact.stage import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--validated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    panel_params = params.panel
    spill = tempfile.TemporaryDirectory(prefix="impact-panel-")  # never in the data folders
    con = connect(panel_params, spill.name)
    tables = {p.stem: con.read_parquet(str(p)) for p in sorted(args.validated.glob("*.parquet"))}
    result = build_panel(con, tables, panel_params)

    # open spells count as at risk until panel.end: warn when the data stop well before it
    last = tables["trajectories"].aggregate(
        "max(greatest(CAST(start_date AS DATE), coalesce(CAST(end_date AS DATE), "
        "CAST(start_date AS DATE))))").fetchall()[0][0]
    if last is not None and str(last)[:7] < panel_params.end:
        logging.warning("the latest date in trajectories is %s, before panel.end = %s: open "
                        "spells are counted as at risk until panel.end; set panel.end to where "
                        "the data stop", last, panel_params.end)
        result.summary["warning_data_end"] = str(last)

    out = io.clean_dir(args.out)
    # the view's rows in its order, without sorting them; snappy, which pyarrow reads
    # back fastest (impact.panel.expand)
    write_person_months(result.source, out / "person_months.parquet", compression="snappy")
    result.cells.write_parquet(str(out / "cells.parquet"), compression="zstd")
    io.write_json(result.summary, out / "summary.json")
    con.close()
    spill.cleanup()
    logging.info("panel: %s spells, %s person-months", result.summary.get("spells"),
                 result.summary.get("person_months"))


if __name__ == "__main__":
    run_stage("panel", main)
