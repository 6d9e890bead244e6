"""Stage `report`: reports/metrics.json exactly as the data contract says, the tidy
table of all estimates, event-study plot data for DVC, and figures."""

import argparse
import logging
from pathlib import Path

import matplotlib.pyplot as plt

from impact import io
from impact.config import load_params
from impact.report import build_metrics, publication_estimates
from impact.report.figures import event_study_figure, headline_figure, set_theme
from impact.stage import run_stage

EVENT_STUDIES = {"adoption": "adoption_event_study", "shock": "shock_event_study"}
PLOT_COLUMNS = ["rel_time", "estimate", "ci_low", "ci_high"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("estimates", "panel-summary", "data-quality", "metrics", "tables", "figures", "plots"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    privacy = load_params(args.params).privacy
    headline = io.read_json(args.estimates / "headline.json")
    summary = io.read_json(args.panel_summary)
    quality_report = io.read_json(args.data_quality)
    counts = {"spells": summary["spells"], "person_months": summary["person_months"],
              "rejected_rows": quality_report["rejected_rows"]}
    metrics = build_metrics(headline, counts)
    io.write_json(metrics, args.metrics)

    tidy = publication_estimates(io.read_parquet(args.estimates / "estimates.parquet"),
                                 privacy.min_residual_df)
    tables, figures = io.clean_dir(args.tables), io.clean_dir(args.figures)
    io.write_csv(tidy, tables / "estimates.csv")

    set_theme()
    fig = headline_figure(metrics)
    fig.savefig(figures / "headline.png")
    plt.close(fig)
    io.clean_dir(args.plots)
    for block, model in EVENT_STUDIES.items():
        path = tidy.loc[(tidy["model"] == model) & tidy["rel_time"].notna(), PLOT_COLUMNS]
        io.write_csv(path.sort_values("rel_time"), args.plots / f"{model}.csv")
        if len(path):
            fig = event_study_figure(path, title=model.replace("_", " ").capitalize())
            fig.savefig(figures / f"{model}.png")
            plt.close(fig)
    logging.info("wrote %s", args.metrics)


if __name__ == "__main__":
    run_stage("report", main)
