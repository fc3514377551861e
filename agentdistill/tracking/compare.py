"""Compare the runs of an MLflow experiment: a table (rows: variants, columns: benchmarks + average) and a PNG chart.

    from agentdistill.tracking.compare import collect, results_table, bar_chart
    table = collect("quickstart")             # ComparisonTable(rows={"agent-distill": {"math500": 0.2, ...}}, ...)
    rich.print(results_table(table))
    bar_chart(table, "comparison.png")

The command line: `agentdistill compare EXPERIMENT` (also logs the chart to a "comparison" run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentdistill import tracking


@dataclass
class ComparisonTable:
    experiment: str
    rows: dict[str, dict[str, float]]  # variant/run name -> benchmark -> accuracy
    benchmarks: list[str]  # column order (without "average")
    run_ids: dict[str, str] = field(default_factory=dict)

    def average(self, row: str) -> float | None:
        vals = [self.rows[row][b] for b in self.benchmarks if b in self.rows[row]]
        stored = self.rows[row].get(tracking.AVERAGE)
        return stored if stored is not None else (sum(vals) / len(vals) if vals else None)


def table_from_results(results: dict[str, dict[str, float]], experiment: str = "") -> ComparisonTable:
    """A ComparisonTable from in-memory results {variant: {benchmark: accuracy}} (the distill job's own)."""
    benchmarks = []
    for accs in results.values():
        benchmarks += [b for b in accs if b not in benchmarks and b != tracking.AVERAGE]
    return ComparisonTable(experiment=experiment, rows={k: dict(v) for k, v in results.items()},
                           benchmarks=benchmarks)


def collect(experiment: str, tracking_uri: str | None = None, kind: str = tracking.ACCURACY) -> ComparisonTable:
    """Read the experiment's evaluated runs (newest run per variant wins) from the MLflow store."""
    import mlflow

    tracking.configure(None, tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in mlflow.search_experiments()]
        raise LookupError(f"no MLflow experiment named {experiment!r} in {mlflow.get_tracking_uri()}; "
                          f"experiments there: {', '.join(names) or 'none'} (set MLFLOW_TRACKING_URI to another store?)")
    runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="list",
                              order_by=["attributes.start_time ASC"])
    prefix = f"{kind}/"
    rows, run_ids, benchmarks = {}, {}, []
    for run in runs:
        if run.data.tags.get(tracking.TAG_KIND) == "comparison":
            continue
        accs = {k[len(prefix):]: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
        if not accs:
            continue
        name = run.data.params.get("variant") or run.info.run_name or run.info.run_id[:8]
        rows[name] = accs  # later runs of the same variant replace earlier ones
        run_ids[name] = run.info.run_id
        benchmarks += [b for b in accs if b not in benchmarks and b != tracking.AVERAGE]
    if not rows:
        raise LookupError(f"experiment {experiment!r} has no runs with '{prefix}<benchmark>' metrics yet; run "
                          f"`agentdistill eval` or `agentdistill distill` first")
    return ComparisonTable(experiment=experiment, rows=rows, benchmarks=benchmarks, run_ids=run_ids)


def results_table(table: ComparisonTable, title: str | None = None):
    """A rich Table: one row per variant, one column per benchmark, then the average; best per column in bold."""
    from rich.table import Table

    t = Table(title=title or f"accuracy - {table.experiment}".strip(" -"))
    t.add_column("variant", style="cyan", no_wrap=True)
    cols = table.benchmarks + [tracking.AVERAGE]
    for c in cols:
        t.add_column(c, justify="right")
    values = {r: [table.rows[r].get(b) for b in table.benchmarks] + [table.average(r)] for r in table.rows}
    best = [max((v[i] for v in values.values() if v[i] is not None), default=None) for i in range(len(cols))]
    for r, vals in values.items():
        cells = []
        for i, v in enumerate(vals):
            text = "-" if v is None else f"{100 * v:.1f}"
            cells.append(f"[bold]{text}[/bold]" if v is not None and v == best[i] and len(values) > 1 else text)
        t.add_row(r, *cells)
    return t


def to_markdown(table: ComparisonTable) -> str:
    cols = table.benchmarks + [tracking.AVERAGE]
    lines = ["| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in table.rows:
        vals = [table.rows[r].get(b) for b in table.benchmarks] + [table.average(r)]
        lines.append(f"| {r} | " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def figure(table: ComparisonTable):
    """The comparison chart as a matplotlib Figure: grouped bars, benchmarks (+ average) on x, one bar per variant,
    accuracy in %; when every value is zero, it says so (else the axes would look empty)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    cols = table.benchmarks + [tracking.AVERAGE]
    names = list(table.rows)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(cols) + 2), 4.5))
    for i, name in enumerate(names):
        vals = [table.rows[name].get(b) for b in table.benchmarks] + [table.average(name)]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(cols))]
        ax.bar(xs, [100 * (v or 0.0) for v in vals], width=width, label=name)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_ylabel("accuracy (%)")
    top = max([100 * (v or 0.0) for r in names for v in table.rows[r].values()] + [0.0])
    ax.set_ylim(0, min(100.0, max(10.0, 1.2 * top)))  # low CPU-scale accuracies stay visible
    if top == 0.0:
        ax.text(0.5, 0.5, f"all zero: no variant got a question right ({len(names)} variants)",
                transform=ax.transAxes, ha="center", va="center", fontsize="large", color="dimgray")
    ax.set_title(f"{table.experiment}: accuracy by benchmark")
    ax.legend(fontsize="small", ncols=2 if len(names) > 4 else 1)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def bar_chart(table: ComparisonTable, path) -> Path:
    """The comparison chart (see `figure`) as a PNG file."""
    import matplotlib.pyplot as plt

    fig = figure(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def log_comparison(table: ComparisonTable, chart: Path, markdown: Path | None = None,
                   tracking_uri: str | None = None, runs=None) -> str | None:
    """Log the chart (and table) to a run named "comparison" in the experiment; returns its run id.

    runs: the job's tracking.jobs.JobRuns (one comparison run per job, continued by a rerun; None once the store is
    lost); else a new run in the experiment.
    """
    files = {chart: None, **({markdown: None} if markdown is not None else {})}
    settings = {"kind": "comparison", "tags": {"agentdistill.variants": ",".join(table.rows)[:5000]}}
    if runs is not None:
        with runs.run("comparison", **settings) as run:
            runs.log(artifacts=files)
        return run.info.run_id if run is not None and runs.lost is None else None
    with tracking.start_run("comparison", experiment=table.experiment, tracking_uri=tracking_uri,
                            **settings) as run:
        for path, folder in files.items():
            tracking.log_artifact(path, artifact_path=folder)
        return run.info.run_id
