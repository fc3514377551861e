"""MLflow helpers: one store, one set of metric and parameter names for every run of the project.

    from agentdistill import tracking
    with tracking.start_run("agent-distill", experiment="quickstart", params={"variant": "agent", "student": ...}):
        tracking.log_accuracies({"math500": 0.12, "gsm-hard": 0.05})   # accuracy/math500, ..., accuracy/average

Store: $MLFLOW_TRACKING_URI if set (a team's tracking server), else `sqlite:///mlflow.db` in the working
folder. View it with `mlflow ui --backend-store-uri sqlite:///mlflow.db`. Modules: probe (is the store there),
lifecycle (a job's runs after a kill -9), jobs (a job's runs, kept going when the store is lost), compare, ui_check.

Names (the same in every run so that the MLflow UI's run comparison lines them up):
    metrics  accuracy/<benchmark>, accuracy/average, answered/<benchmark>, answered/average (any answer at all),
             f1/<benchmark>, judge_accuracy/<benchmark>,
             examples/<benchmark>, errors/<benchmark>, mean_steps/<benchmark>, mean_tokens/<benchmark>,
             mean_seconds/<benchmark>
    params   variant, program, student, teacher, sag, sag_n, sag_temperature, sag_top_p, benchmarks, limit, split,
             max_steps, max_tokens, threads, config
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

ACCURACY = "accuracy"
ANSWERED = "answered"  # fraction of examples with any answer (an agent reached final_answer)
AVERAGE = "average"
PARAM_NAMES = ("variant", "program", "student", "teacher", "sag", "sag_n", "sag_temperature", "sag_top_p",
               "benchmarks", "limit", "split", "max_steps", "max_tokens", "threads", "config")
TAG_KIND = "agentdistill.kind"  # "variant" (an evaluated program) | "comparison" (a chart run) | "compile"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def metric_key(benchmark: str, kind: str = ACCURACY) -> str:
    """`accuracy/math500` - the one spelling of a per-benchmark metric."""
    return f"{kind}/{benchmark}"


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure(experiment: str | None = None, tracking_uri: str | None = None) -> str:
    """Point MLflow at the store (argument > $MLFLOW_TRACKING_URI > ./mlflow.db) and select the experiment."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    if experiment:
        exp = mlflow.set_experiment(experiment)
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # the UI then opens on the runs table, not GenAI traces
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
    return uri


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts -> "section.key" keys; values as strings within MLflow's size limit."""
    out = {}
    for key, value in (params or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[name] = text[:_MAX_PARAM_CHARS]
    return out


def open_run(run_name: str | None = None, *, experiment: str | None = None, params: dict | None = None,
             tags: dict | None = None, nested: bool = False, tracking_uri: str | None = None, kind: str = "variant",
             job: str | None = None, reopen_finished: bool = True):
    """Start an MLflow run with the project's conventions (store, experiment, flattened params, kind tag); the
    caller ends it (mlflow.end_run). See start_run."""
    import mlflow

    from agentdistill.tracking import lifecycle

    if mlflow.active_run() is None or not nested:
        configure(experiment, tracking_uri)
    all_tags = {TAG_KIND: kind, **(tags or {})}
    earlier = None
    if job:
        if not experiment:
            raise ValueError("start_run(job=...) needs the experiment the job's runs are in")
        experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
        earlier = lifecycle.run_to_continue(experiment_id, job, run_name, reopen_finished=reopen_finished)
        all_tags.update(lifecycle.job_tags(job, resumed=earlier is not None))
    run = mlflow.start_run(run_id=earlier.info.run_id if earlier else None, run_name=run_name, nested=nested,
                           tags=all_tags)
    if earlier is not None:
        lifecycle.close_orphan_children(run.info.run_id)
    if params:
        flat = flatten_params(params)
        if earlier is not None:  # a continued run keeps the values it was first given (MLflow refuses changes)
            flat = {k: v for k, v in flat.items() if k not in earlier.data.params}
        if flat:
            mlflow.log_params(flat)
    return run


@contextlib.contextmanager
def start_run(run_name: str | None = None, *, experiment: str | None = None, params: dict | None = None,
              tags: dict | None = None, nested: bool = False, tracking_uri: str | None = None,
              kind: str = "variant", job: str | None = None, reopen_finished: bool = True):
    """An MLflow run with the project's conventions (store, experiment, flattened params, kind tag).

    job: a job key (tracking.lifecycle): the run is tagged with it and this process, and an earlier run of the
    same name in that job is continued instead of duplicated (a finished one too unless reopen_finished=False).
    """
    import mlflow

    run = open_run(run_name, experiment=experiment, params=params, tags=tags, nested=nested,
                   tracking_uri=tracking_uri, kind=kind, job=job, reopen_finished=reopen_finished)
    try:
        yield run
    except BaseException:
        mlflow.end_run("KILLED" if sys.exc_info()[0] is KeyboardInterrupt else "FAILED")
        raise
    mlflow.end_run()


def log_accuracies(accuracies: dict[str, float], kind: str = ACCURACY, average: bool = True,
                   step: int | None = None) -> dict[str, float]:
    """Log `<kind>/<benchmark>` for each benchmark (+ `<kind>/average`) to the active run; returns them."""
    import mlflow

    metrics = {metric_key(b, kind): float(v) for b, v in accuracies.items()}
    if average and accuracies:
        metrics[metric_key(AVERAGE, kind)] = sum(accuracies.values()) / len(accuracies)
    if metrics:
        mlflow.log_metrics(metrics, step=step)
    return metrics


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_artifact(path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def active_run():
    import mlflow

    return mlflow.active_run()
