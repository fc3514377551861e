"""Run a program on benchmarks: per-example JSONL, accuracy per benchmark and their average, logged to MLflow.

    from agentdistill.benchmarks import evaluate
    result = evaluate(program, ["math500", "gsm-hard"], limit=50, num_threads=4, output_dir="runs/eval")
    result.accuracy            # {"math500": 0.31, "gsm-hard": 0.12}; result.average
    result.answered            # fraction that gave any answer (final_answer, or the out-of-steps ask): shows a
                               # student learning the format before it learns to be right
    # -> runs/eval/<benchmark>.jsonl: id, question, gold, prediction, answered, forced (the answer came from the
    #    out-of-steps ask), correct, f1, steps, tokens, seconds, error, trajectory (the agent's steps / the CoT chat)

`program` is any DSPy module called as `program(question=...)` (CodeAgent, ChainOfThoughtSolver, either inside
SelfConsistency). Inside an active MLflow run the metrics go there; else `run_name=` opens one (see tracking).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dspy

from agentdistill.benchmarks.factual_grading import LLMJudge
from agentdistill.benchmarks.loaders import load_benchmark
from agentdistill.benchmarks.metrics import answer_correct, answer_f1, predicted_answer, task_family


@dataclass
class ExampleResult:
    benchmark: str
    id: str
    question: str
    gold: str
    prediction: object
    answered: bool  # a non-empty answer came back (agent: final_answer or the out-of-steps ask; CoT: one parsed)
    correct: bool
    f1: float
    steps: int | None
    tokens: int | None
    seconds: float
    judge: bool | None = None
    error: str | None = None
    trajectory: dict | None = None  # the agent's Trajectory.to_dict() (or a CoT's messages), for inspection
    forced: bool = False  # the agent ran out of steps and its answer came from the final-answer ask (the paper's)


@dataclass
class EvalResult:
    accuracy: dict[str, float]  # benchmark -> fraction correct
    f1: dict[str, float]
    judge_accuracy: dict[str, float]
    answered: dict[str, float] = field(default_factory=dict)  # benchmark -> fraction with any answer
    results: dict[str, list[ExampleResult]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # benchmark -> JSONL path

    @property
    def average(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy) if self.accuracy else 0.0

    @property
    def answered_average(self) -> float:
        return sum(self.answered.values()) / len(self.answered) if self.answered else 0.0

    def rows(self) -> dict[str, list[dict]]:
        """benchmark -> its rows as dicts (id, question, gold, prediction, correct, ...)."""
        return {b: [asdict(r) for r in rows] for b, rows in self.results.items()}

    def metrics(self) -> dict[str, float]:
        """Everything as MLflow metric names (see agentdistill.tracking)."""
        from agentdistill import tracking

        out = {tracking.metric_key(b): v for b, v in self.accuracy.items()}
        out[tracking.metric_key(tracking.AVERAGE)] = self.average
        out.update({tracking.metric_key(b, "f1"): v for b, v in self.f1.items()})
        out.update({tracking.metric_key(b, "judge_accuracy"): v for b, v in self.judge_accuracy.items()})
        out.update({tracking.metric_key(b, tracking.ANSWERED): v for b, v in self.answered.items()})
        if self.answered:
            out[tracking.metric_key(tracking.AVERAGE, tracking.ANSWERED)] = self.answered_average
        for b, rows in self.results.items():
            out[tracking.metric_key(b, "examples")] = len(rows)
            out[tracking.metric_key(b, "errors")] = sum(r.error is not None for r in rows)
            for name, attr in (("mean_steps", "steps"), ("mean_tokens", "tokens"), ("mean_seconds", "seconds")):
                vals = [getattr(r, attr) for r in rows if getattr(r, attr) is not None]
                if vals:
                    out[tracking.metric_key(b, name)] = sum(vals) / len(vals)
        return out


def _steps_and_tokens(pred) -> tuple[int | None, int | None]:
    """Agent step count and LM tokens from a prediction's trajectory (or DSPy's usage tracker)."""
    steps = tokens = None
    traj = getattr(pred, "trajectory", None) if pred is not None else None
    if traj is None and isinstance(pred, dspy.Prediction):
        traj = pred.get("trajectory")
    if traj is not None:
        st = getattr(traj, "steps", None)
        if st is None and isinstance(traj, dict):
            st = traj.get("steps")
        if isinstance(st, list):
            steps = len(st)
        usage = getattr(traj, "usage", None) if not isinstance(traj, dict) else traj.get("usage")
        tokens = _count_tokens(usage)
    if tokens is None and isinstance(pred, dspy.Prediction):
        try:
            tokens = _count_tokens(pred.get_lm_usage())
        except Exception:
            tokens = None
    return steps, tokens


def _count_tokens(usage) -> int | None:
    if not isinstance(usage, dict) or not usage:
        return None
    if "total_tokens" in usage or "prompt_tokens" in usage or "completion_tokens" in usage:
        total = usage.get("total_tokens")
        if total is None:
            total = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
        return int(total)
    subtotals = [_count_tokens(v) for v in usage.values() if isinstance(v, dict)]  # per-LM usage dicts
    subtotals = [s for s in subtotals if s is not None]
    return sum(subtotals) if subtotals else None


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


ROW = "eval_row"  # an extra input on the devset copies dspy.Evaluate gets: which example a call is (see _Measured)


class _Failed(dspy.Prediction):
    """What `_Measured` returns for a program that raised: the metric records the row, then raises for DSPy."""


class ExampleFailed(RuntimeError):
    """Raised by the metric for an example whose program raised, so dspy.Evaluate's error budget counts it."""


class _Measured:
    """The program as dspy.Evaluate calls it: pops the row number, times the call, tracks LM usage, and turns an
    exception into a `_Failed` prediction so the metric can record the row with its error.

    dspy's ParallelExecutor resubmits an example that has run 120 s once <= 3 remain (its straggler rule, not
    configurable through dspy.Evaluate); agent examples on a CPU run minutes, so a second call of a row waits for
    the first one's result instead of running the program again.
    """

    def __init__(self, program):
        self.program = program
        self.seconds: dict[int, float] = {}
        self._runs: dict[int, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()

    def __call__(self, **inputs):
        row = inputs.pop(ROW)
        with self._lock:
            first = row not in self._runs
            if first:
                self._runs[row] = (threading.Event(), [])
            done, out = self._runs[row]
        if not first:
            done.wait()
            return out[0]
        start = time.perf_counter()
        try:
            with dspy.context(track_usage=True):
                pred = self.program(**inputs)
        except Exception as e:  # recorded by the metric, then counted against dspy's error budget
            pred = _Failed(error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        self.seconds[row] = time.perf_counter() - start
        out.append(pred)
        done.set()
        return pred


class _Recorder:
    """The metric dspy.Evaluate calls for one benchmark: builds each example's row, appends it to the JSONL as it
    finishes (a long run can be inspected while it goes, and an aborted one keeps its rows), advances the bar."""

    def __init__(self, benchmark: str, measured: _Measured, judge: LLMJudge | None, jsonl, on_row):
        self.benchmark, self.measured, self.judge, self.jsonl, self.on_row = benchmark, measured, judge, jsonl, on_row
        self.rows: dict[int, ExampleResult] = {}
        self._claimed: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, example, pred, trace=None) -> float:
        row_number = example[ROW]
        error = pred.error if isinstance(pred, _Failed) else None
        with self._lock:
            duplicate = row_number in self._claimed
            self._claimed.add(row_number)
        if duplicate:  # a straggler's second call (see _Measured): the same prediction, no second row or judge call
            if error is not None:
                raise ExampleFailed(error.splitlines()[0])
            return float(bool(answer_correct(example, pred)))
        row = _row(example, None if error is not None else pred, self.benchmark, self.judge,
                   self.measured.seconds.get(row_number, 0.0), error)
        with self._lock:
            self.rows[row_number] = row
            if self.jsonl:
                self.jsonl.write(json.dumps(asdict(row), ensure_ascii=False, default=str) + "\n")
                self.jsonl.flush()
        self.on_row(row)
        if error is not None:
            raise ExampleFailed(error.splitlines()[0])
        return float(row.correct)


def _row(example, pred, benchmark: str, judge: LLMJudge | None, seconds: float, error: str | None) -> ExampleResult:
    correct = bool(answer_correct(example, pred)) if pred is not None else False
    f1 = float(answer_f1(example, pred)) if pred is not None else 0.0
    steps, tokens = _steps_and_tokens(pred)
    verdict = None
    if judge is not None and pred is not None and task_family(example) == "factual":
        try:
            verdict = bool(judge(example.question, example.answer, str(predicted_answer(pred))))
        except Exception as e:
            error = (error or "") + f"judge failed: {type(e).__name__}: {e}"
    answer = predicted_answer(pred)
    return ExampleResult(benchmark=benchmark, id=str(example.get("id", "")), question=example.question,
                         gold=str(example.answer), prediction=_jsonable(answer),
                         answered=answer is not None and str(answer).strip() != "", correct=correct,
                         f1=f1, steps=steps, tokens=tokens, seconds=round(seconds, 3), judge=verdict, error=error,
                         trajectory=_trajectory(pred),
                         forced=getattr(getattr(pred, "trajectory", None), "forced_answer", None) is not None)


def _trajectory(pred) -> dict | None:
    if pred is None:
        return None
    traj = getattr(pred, "trajectory", None)
    if hasattr(traj, "to_dict"):
        return traj.to_dict()
    if isinstance(traj, dict):
        return traj
    messages = getattr(pred, "messages", None)  # ChainOfThoughtSolver: the chat it saw and wrote
    return {"messages": messages} if isinstance(messages, list) else None


def evaluate(program, benchmarks, *, limit: int | None = None, split: str = "test", num_threads: int = 1,
             output_dir=None, data_dir=None, judge_lm: dspy.LM | None = None, log_to_mlflow: bool = True,
             run_name: str | None = None, experiment: str | None = None, params: dict | None = None,
             progress: bool = True, console=None, max_errors: int | None = None,
             model_id: str | None = None) -> EvalResult:
    """Evaluate `program` on benchmarks (names, or a dict name -> list of examples); see the module docstring.

    Each benchmark is one `dspy.Evaluate` call (its threads, error budget and callbacks: `mlflow.dspy.autolog()`
    logs it as an evaluation); the metric it calls records the rows.

    Args:
        limit: first `limit` examples of each benchmark (file order).
        num_threads: examples run concurrently from threads (each sees the caller's dspy.context).
        output_dir: where `<benchmark>.jsonl` files go (None: not written).
        judge_lm: optional LM for the factual LLM judge, logged as `judge_accuracy/<benchmark>`.
        log_to_mlflow: log metrics (+ the JSONL files) to the active run, or to a new run `run_name`.
        max_errors: examples whose program raises before the evaluation stops (dspy.Evaluate's error budget;
            None: `dspy.settings.max_errors`). Each failed example is a row with its error, scored wrong.
        model_id: the MLflow logged model the program is (a compiled student): the metrics link to it, and each
            benchmark's to its questions' dataset.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from agentdistill.progress import Progress

    if isinstance(benchmarks, str):
        benchmarks = [benchmarks]
    if isinstance(benchmarks, dict):
        sets = {name: list(exs)[:limit] if limit else list(exs) for name, exs in benchmarks.items()}
    else:
        sets = {name: load_benchmark(name, split=split, limit=limit, data_dir=data_dir) for name in benchmarks}
    judge = LLMJudge(judge_lm) if judge_lm is not None else None
    out_dir = Path(output_dir) if output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)

    result = EvalResult(accuracy={}, f1={}, judge_accuracy={})
    total = sum(len(v) for v in sets.values())
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("acc {task.fields[acc]:.1%}"), TimeElapsedColumn(), console=console,
                  disable=not progress, transient=False) as bar:
        overall = bar.add_task("all", total=total, acc=0.0)
        counts = {"done": 0, "correct": 0}
        for name, examples in sets.items():
            task = bar.add_task(name, total=len(examples), acc=0.0)
            seen = {"done": 0, "correct": 0}

            def on_row(row, task=task, seen=seen):
                for c in (seen, counts):
                    c["done"], c["correct"] = c["done"] + 1, c["correct"] + row.correct
                bar.update(task, advance=1, acc=seen["correct"] / seen["done"])
                bar.update(overall, advance=1, acc=counts["correct"] / counts["done"])

            rows = _evaluate_one(program, name, examples, judge, out_dir, on_row, num_threads, max_errors)
            if out_dir:
                result.files[name] = str(out_dir / f"{name}.jsonl")
            result.results[name] = rows
            result.accuracy[name] = sum(r.correct for r in rows) / len(rows) if rows else 0.0
            result.answered[name] = sum(r.answered for r in rows) / len(rows) if rows else 0.0
            if examples and task_family(examples[0]) == "factual":
                result.f1[name] = sum(r.f1 for r in rows) / len(rows)
            if judge is not None:
                judged = [r.judge for r in rows if r.judge is not None]
                if judged:
                    result.judge_accuracy[name] = sum(judged) / len(judged)

    if log_to_mlflow:
        _log(result, run_name=run_name, experiment=experiment, params=params, model_id=model_id)
    return result


class EvaluationAborted(RuntimeError):
    """More examples failed than the error budget allows; the rows finished so far are kept in the JSONL."""


def _evaluate_one(program, name: str, examples: list, judge, out_dir: Path | None, on_row, num_threads: int,
                  max_errors: int | None) -> list[ExampleResult]:
    """One benchmark through dspy.Evaluate; the rows in example order."""
    if not examples:
        return []
    measured = _Measured(program)
    jsonl = (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") if out_dir else None
    recorder = _Recorder(name, measured, judge, jsonl, on_row)
    devset = [ex.copy(**{ROW: i}).with_inputs(*ex.inputs().keys(), ROW) for i, ex in enumerate(examples)]
    evaluator = dspy.Evaluate(devset=devset, metric=recorder, num_threads=max(1, num_threads),
                              display_progress=False, max_errors=max_errors, provide_traceback=False)
    try:
        evaluator(measured, callback_metadata={"benchmark": name})
    except Exception as e:
        failed = [r for r in recorder.rows.values() if r.error is not None]
        if not failed:
            raise
        where = f"; the {len(recorder.rows)} finished rows are in {out_dir / f'{name}.jsonl'}" if out_dir else ""
        raise EvaluationAborted(
            f"{name}: the evaluation stopped after {len(failed)} examples failed (dspy's error budget, max_errors="
            f"{max_errors if max_errors is not None else dspy.settings.max_errors}); first error: "
            f"{failed[0].error.splitlines()[0]}{where}. Fix the cause, or raise the budget (evaluate(max_errors=...), "
            "dspy.configure(max_errors=...))") from e
    finally:
        if jsonl:
            jsonl.close()
    return [recorder.rows[i] for i in range(len(examples))]


def _log(result: EvalResult, *, run_name, experiment, params, model_id) -> None:
    import mlflow

    from agentdistill import tracking

    def log():
        tracking.log_evaluation(result.metrics(), result.rows(), model_id=model_id)
        for path in result.files.values():
            tracking.log_artifact(path, artifact_path="eval")

    if mlflow.active_run() is not None and run_name is None:
        if params:
            mlflow.log_params(tracking.flatten_params(params))
        log()
    else:
        with tracking.start_run(run_name, experiment=experiment, params=params,
                                nested=mlflow.active_run() is not None):
            log()
