"""Stage `publish`: policy briefs (nl/en, HTML and PDF), publication tables and
reports/index.html, then a disclosure scan of everything in reports/ (the stage fails on
any identifier or small cell)."""

import argparse
import logging
from pathlib import Path

import yaml

from impact.brief.publish import publish
from impact.config import load_params
from impact.stage import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--reports", type=Path, required=True)
    ap.add_argument("--validated", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    raw = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
    done = publish(args.reports, Path(args.params), raw, params.briefs, params.privacy.min_cell,
                   args.validated)
    logging.info("wrote %d briefs, %d publication tables, reports/index.html; disclosure "
                 "scan clean", len(done.briefs), len(done.tables))


if __name__ == "__main__":
    run_stage("publish", main)
