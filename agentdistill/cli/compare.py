"""`agentdistill compare EXPERIMENT`: the experiment's runs side by side (table + PNG bar chart, logged to MLflow).

    agentdistill compare quickstart                         # store: $MLFLOW_TRACKING_URI or ./mlflow.db
    agentdistill compare quickstart --output chart.png --no-log
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare the runs of an MLflow experiment (table + chart)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", help="MLflow experiment name (e.g. quickstart)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--metric", default="accuracy",
                   help="metric family to compare (accuracy, answered, f1, judge_accuracy)")
    p.add_argument("--output", default=None, help="PNG path (default: <experiment>_comparison.png)")
    p.add_argument("--no-log", action="store_true", help="do not log the chart to a 'comparison' MLflow run")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from agentdistill.cli.errors import UserError, print_warning
    from agentdistill.tracking import compare
    from agentdistill.tracking.probe import check_store, store_lost

    console = Console()
    uri = check_store(args.tracking_uri, where="--tracking-uri" if args.tracking_uri else "")  # seconds, not minutes
    try:
        table = compare.collect(args.experiment, tracking_uri=uri, kind=args.metric)
    except LookupError as e:
        raise UserError(str(e)) from None
    console.print(compare.results_table(table, title=f"{args.metric} (%) - {args.experiment}"))
    out = Path(args.output or f"{args.experiment}_comparison.png")
    chart = compare.bar_chart(table, out)
    md = out.with_suffix(".md")
    md.write_text(compare.to_markdown(table))
    console.print(f"chart: {chart}  table: {md}", highlight=False, markup=False)
    if not args.no_log:
        try:
            run_id = compare.log_comparison(table, chart, md, tracking_uri=uri)
        except Exception as e:
            lost = store_lost(e, uri)
            if lost is None:
                raise
            print_warning(console, f"{lost}: the chart and table were not logged; they are in {chart} and {md}")
            return 1
        console.print(f"logged to MLflow run {run_id} ('comparison')", highlight=False)
    return 0
