"""Stage `report`: reports/metrics.json exactly as the data contract says, the tidy
table of all estimates, event-study plot data for DVC, the decomposition and benchmark
tables, and figures."""

import argparse
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from impact import io
from impact.config import ConfigError, load_params
from impact.report import build_metrics, publication_estimates
from impact.estimate.value_added import ValueAddedResult, publishable_teams
from impact.report.figures import (
    save_png_svg,
    event_study_figure, headline_figure, set_theme, value_added_figure,
)
from impact.report.fair import publish_fair, waterfalls_drawn
from impact.robustness.figure import robustness_figure
from impact.sweep.curve import collect_cells, curve_figure, curve_table
from impact.sweep.curve import summary as curve_summary
from impact.report.specs import collect_specifications, headline_blocks
from impact.stage import run_stage

#: event-study paths of the headline specifications: (block, model, plot file, title) — rows
#: with term 'event_time' and no cohort (none when the headline estimator has no such path)
EVENT_STUDIES = [
    ("adoption", "adoption_imputation", "adoption_event_study",
     "Programme adoption: effect by months since adoption"),
    ("shock", "shock_event_study", "shock_event_study",
     "Business-park opening: effect by months since opening"),
]
PLOT_COLUMNS = ["rel_time", "estimate", "ci_low", "ci_high"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("estimates", "panel-summary", "data-quality", "metrics", "tables", "figures",
                 "plots", "decompose", "benchmark"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    # the sweep and the robustness checks are optional inputs: without them (a hand-run
    # pipeline of the headline specifications only) the curve and robustness outputs are
    # left out and the log says so
    for name in ("sweep", "robustness", "heterogeneity"):
        ap.add_argument(f"--{name}", type=Path, default=None)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    params = load_params(args.params)
    params.privacy  # fail fast on a bad privacy section
    tables, figures = io.clean_dir(args.tables), io.clean_dir(args.figures)
    # the waterfalls (nationally 343 figures, most of the stage's time) are drawn by
    # worker processes from the start, while this one makes everything else
    with waterfalls_drawn(args.decompose, figures, params.decompose.waterfalls) as n_drawn:
        n_tables = _the_rest(args, params, tables, figures)
    logging.info("wrote %s; decomposition and benchmark: %d tables, %d waterfalls",
                 args.metrics, n_tables, n_drawn)


def _the_rest(args, params, tables: Path, figures: Path) -> int:
    """Everything but the waterfalls; returns how many decomposition and benchmark
    tables were published."""
    specs, chosen = params.specifications, params.headline
    results = {}
    for name in specs:  # exactly the specifications params names, never a folder listing
        folder = args.estimates / name
        if not (folder / "headline.json").exists():
            raise ConfigError(f"no estimates for specification {name!r} in {folder}: run "
                              f"'dvc repro' (stage estimate@{name})")
        results[name] = (io.read_parquet(folder / "estimates.parquet"),
                         io.read_json(folder / "headline.json"))
    summary = io.read_json(args.panel_summary)
    quality_report = io.read_json(args.data_quality)
    counts = {"spells": summary["spells"], "person_months": summary["person_months"],
              "rejected_rows": quality_report["rejected_rows"]}
    metrics = build_metrics(headline_blocks(results, chosen), counts)
    io.write_json(metrics, args.metrics)

    tidy_all, spec_table = collect_specifications(results, specs, chosen)
    tidy = publication_estimates(tidy_all)
    io.write_csv(tidy, tables / "estimates.csv")
    io.write_csv(spec_table, tables / "specifications.csv")

    set_theme()
    fig = headline_figure(metrics)
    save_png_svg(fig, figures / "headline.png")
    plt.close(fig)
    io.clean_dir(args.plots)
    for block, model, name, title in EVENT_STUDIES:
        spec = chosen.get(block)
        rows = ((tidy["specification"] == spec) & (tidy["model"] == model)
                & (tidy["term"] == "event_time") & tidy["cohort"].isna())
        path = tidy.loc[rows & tidy["rel_time"].notna()].sort_values("rel_time")
        # the long tail of event time rests on few units: show where at least half contribute
        if path["n_obs"].notna().any():
            path = path.loc[path["n_obs"] >= 0.5 * path["n_obs"].max()]
        path = path[PLOT_COLUMNS]
        io.write_csv(path, args.plots / f"{name}.csv")
        if len(path):
            fig = event_study_figure(path, title=title)
            save_png_svg(fig, figures / f"{name}.png")
            plt.close(fig)
    q_spec = chosen.get("quality")
    va_path = args.estimates / str(q_spec) / "value_added_team.parquet"
    if q_spec and va_path.exists():  # teams only; caseworker value-added stays internal
        teams = publishable_teams(ValueAddedResult("team", io.read_parquet(va_path), {}),
                                  min_clients=params.privacy.min_cell)
        teams["n_clients"] = teams["n_clients"].astype("Int64")
        io.write_csv(teams, tables / "value_added_teams.csv")
        if len(teams):
            fig = value_added_figure(teams)
            save_png_svg(fig, figures / "value_added_teams.png")
            plt.close(fig)

    if args.sweep is None:
        logging.info("no --sweep given: specification curve left out")
    else:
        publish_curve(args.sweep, params, tables, figures, args.plots)
    if args.robustness is None:
        logging.info("no --robustness given: robustness tables left out")
    else:
        publish_robustness(args.robustness, metrics, tables, figures)
    if args.heterogeneity is None:
        logging.info("no --heterogeneity given: group effects left out")
    else:
        publish_heterogeneity(args.heterogeneity, params, tables, figures)
    return publish_fair(args.decompose, args.benchmark, tables, figures)["tables"]


def publish_curve(sweep: Path, params, tables: Path, figures: Path, plots: Path) -> None:
    """The specification curve of exactly the grid cells params names."""
    curve = curve_table(collect_cells(sweep, params.grid), params.estimate.estimate.alpha)
    io.write_csv(curve, tables / "specification_curve.csv")
    io.write_json(curve_summary(curve), tables / "specification_curve_summary.json")
    io.write_csv(curve[["cell", "outcome", "rank", "estimate", "ci_low", "ci_high"]],
                 plots / "specification_curve.csv")
    fig = curve_figure(curve)
    save_png_svg(fig, figures / "specification_curve.png")
    plt.close(fig)


#: the heterogeneity stage's publication tables (already under disclosure control)
HETEROGENEITY_TABLES = ("group_effects.csv", "heterogeneity_tests.csv", "incidence.csv",
                        "progress_effects.csv", "cddf_blp.csv", "cddf_gates.csv",
                        "cddf_clan.csv")


def publish_heterogeneity(folder: Path, params, tables: Path, figures: Path) -> None:
    """Copy the for-whom tables into reports/ and draw the forest plots and the
    cumulative-incidence figures."""
    for name in HETEROGENEITY_TABLES:  # a table without even a header is not copied
        if (folder / name).exists() and (folder / name).stat().st_size > 1:
            (tables / name).write_bytes((folder / name).read_bytes())
    het, min_cell = params.heterogeneity, params.privacy.min_cell
    groups_path = folder / "group_effects.csv"
    if groups_path.exists():
        from impact.report.forest import forest_figures

        groups = pd.read_csv(groups_path, keep_default_na=False, na_values=[""])
        tests = pd.read_csv(folder / "heterogeneity_tests.csv")
        for name, fig in forest_figures(groups, tests, min_cell=min_cell,
                                        alpha=params.estimate.estimate.alpha).items():
            save_png_svg(fig, figures / f"{name}.png")
            plt.close(fig)
    inc_path = folder / "incidence.csv"
    if inc_path.exists() and inc_path.stat().st_size > 1:
        from impact.heterogeneity.incidence_figure import incidence_figure

        inc = pd.read_csv(inc_path, keep_default_na=False, na_values=[""],
                          dtype={"group": str})
        order = {d.name: list(d.labels) for d in het.groups}
        for dim, part in inc.groupby("dimension", sort=False):
            fig = incidence_figure(part, group_label=dim.replace("_", " "), min_cell=min_cell,
                                   groups=[g for g in order.get(dim, []) if
                                           g in set(part["group"])] or None)
            save_png_svg(fig, figures / f"incidence_{dim}.png")
            plt.close(fig)


def publish_robustness(robustness: Path, metrics: dict, tables: Path, figures: Path) -> None:
    """Copy the robustness tables into reports/ and draw their figure."""
    for name in ("robustness.csv", "robustness_loo.csv", "robustness.md"):
        (tables / name).write_bytes((robustness / name).read_bytes())
    checks = pd.read_csv(robustness / "robustness.csv")
    if len(checks):
        fig = robustness_figure(checks, metrics)
        save_png_svg(fig, figures / "robustness.png")
        plt.close(fig)


if __name__ == "__main__":
    run_stage("report", main)
