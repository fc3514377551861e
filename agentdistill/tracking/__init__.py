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
A compile (AgentDistill / CoTDistill: `compile_run`, tag agentdistill.kind=compile) logs teacher_success_rate,
kept_<records> and <records> (trajectories / answers), kept, dropped and generation.* in its "generation" child,
train_seconds, train_loss, sft_examples, sft_tokens, sft_assistant_tokens, truncated in its "training" child, and
accuracy/val (the valset, in its "evaluation" child and on the parent run).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
from pathlib import Path

ACCURACY = "accuracy"
ANSWERED = "answered"  # fraction of examples with any answer (an agent reached final_answer)
AVERAGE = "average"
PARAM_NAMES = ("variant", "program", "student", "teacher", "sag", "sag_n", "sag_temperature", "sag_top_p",
               "benchmarks", "limit", "split", "max_steps", "max_tokens", "threads", "config")
TAG_KIND = "agentdistill.kind"  # "variant" (an evaluated program) | "comparison" (a chart run) | "compile"
VALSET = "val"  # the benchmark name of a compile's valset: accuracy/val
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def metric_key(benchmark: str, kind: str = ACCURACY) -> str:
    """`accuracy/math500` - the one spelling of a per-benchmark metric."""
    return f"{kind}/{benchmark}"


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a store the user already chose (mlflow.set_tracking_uri), else ./mlflow.db."""
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if is_tracking_uri_set():
        import mlflow

        return mlflow.get_tracking_uri()
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure(experiment: str | None = None, tracking_uri: str | None = None) -> str:
    """Point MLflow at the store (argument > $MLFLOW_TRACKING_URI > the user's mlflow.set_tracking_uri > ./mlflow.db),
    check that it answers (probe: a TrackingStoreError in seconds, not a hang), and select the experiment."""
    import mlflow

    uri = tracking_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    _probed(uri)
    if experiment:
        exp = mlflow.set_experiment(experiment)
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # the UI then opens on the runs table, not GenAI traces
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
    return uri


@functools.lru_cache(maxsize=8)
def _probed(uri: str) -> str:
    """check_store once per store and process (a failed probe is not cached: the next call asks again)."""
    from agentdistill.tracking.probe import check_store

    return check_store(uri)


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


def log_metrics(metrics: dict[str, float], step: int | None = None, enabled: bool = True, model_id: str | None = None,
                dataset=None) -> None:
    """Log numeric metrics to the active run (None values skipped); `enabled=False` does nothing. `model_id` (a
    logged model) and `dataset` (eval_dataset) link them in MLflow's model view."""
    if not enabled:
        return
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None}, step=step, model_id=model_id,
                       dataset=dataset)


def eval_dataset(name: str, rows: list[dict]):
    """An MLflow dataset of evaluation questions ({"id", "question", "gold"} rows): metrics logged with it say
    which questions they are of (its digest changes when the questions do)."""
    import mlflow
    import pandas as pd

    frame = pd.DataFrame([{k: str(r.get(k, "")) for k in ("id", "question", "gold")} for r in rows])
    return mlflow.data.from_pandas(frame, name=name, targets="gold")


def log_evaluation(metrics: dict[str, float], rows: dict[str, list[dict]], model_id: str | None = None) -> None:
    """An evaluation's metrics (`<kind>/<benchmark>` names), each benchmark's linked to its questions' dataset and
    all of them to `model_id` when the program is a logged model; `rows`: benchmark -> its example rows."""
    datasets = {name: eval_dataset(name, examples) for name, examples in rows.items() if examples}
    by_benchmark: dict[str | None, dict] = {}
    for key, value in metrics.items():
        benchmark = key.split("/", 1)[1] if "/" in key else None
        by_benchmark.setdefault(benchmark if benchmark in datasets else None, {})[key] = value
    for benchmark, group in by_benchmark.items():
        log_metrics(group, model_id=model_id, dataset=datasets.get(benchmark))


STUDENT_MODEL_TAG = "agentdistill.student_model"  # a logged student's LM model string (local/<name>@<hash>...)


def log_student_model(program, params: dict | None = None, name: str = "student") -> str:
    """The compiled program as an MLflow logged model of the active run (mlflow.dspy.log_model; the weights stay
    where the checkpoint is - agentdistill.programs.portable.log_program copies them); returns its model_id."""
    import dspy
    import mlflow

    lm_model = str(program.predictors()[0].lm.model)
    info = mlflow.dspy.log_model(program, name=name, params=flatten_params(params or {}),
                                 tags={STUDENT_MODEL_TAG: lm_model, TAG_KIND: "student"},
                                 pip_requirements=[f"dspy=={dspy.__version__}", f"mlflow=={mlflow.__version__}"])
    return info.model_id


def find_student_model(program, experiment_id: str | None = None) -> str | None:
    """The model_id an earlier compile logged for this program's checkpoint (same LM model string), or None."""
    import mlflow

    lm = program.predictors()[0].lm if program.predictors() else None
    if lm is None:
        return None
    ids = [experiment_id] if experiment_id else [e.experiment_id for e in mlflow.search_experiments()]
    value = str(lm.model).replace("'", "\\'")
    found = mlflow.search_logged_models(experiment_ids=ids, filter_string=f"tags.`{STUDENT_MODEL_TAG}` = '{value}'",
                                        max_results=1, output_format="list")
    return found[0].model_id if found else None


def log_artifact(path, artifact_path: str | None = None, enabled: bool = True) -> None:
    if enabled:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_json_artifact(obj, name: str, enabled: bool = True) -> None:
    """`obj` as the JSON artifact `name` of the active run."""
    if not enabled:
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_text(json.dumps(obj, indent=1, default=str, ensure_ascii=False))
        log_artifact(path)


@contextlib.contextmanager
def compile_run(name: str, params: dict | None = None, enabled: bool = True, parent: bool = False):
    """A teleprompter's run: the parent (`parent=True`) reuses an active run (autolog's, the user's, the distill
    job's) instead of opening another; the children ("generation", "training", "evaluation") nest under it.
    Params flattened as everywhere (flatten_params); the store as `configure` picks it."""
    if not enabled:
        yield None
        return
    import mlflow

    active = mlflow.active_run()
    if active is None:
        configure()
    if parent and active is not None:
        mlflow.set_tag(TAG_KIND + ".compile", name)
        if params:
            mlflow.log_params(flatten_params(params))
        yield active
        return
    with mlflow.start_run(run_name=name, nested=active is not None,
                          tags={TAG_KIND: "compile" if parent else "compile-step"}) as run:
        if params:
            mlflow.log_params(flatten_params(params))
        yield run


def active_run():
    import mlflow

    return mlflow.active_run()
