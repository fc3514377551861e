"""Filtering teacher outputs before fine-tuning, with a report that counts every reason.

A trajectory is kept when (1) the metric says its final answer is right, (2) no step failed to parse, (3) no step
is void (no code, or code that runs nothing: SimpleTIR's filter, `agentdistill.programs.trajectory.is_void`) and
(4) it did not run out of steps. Steps whose code raised an execution error stay: the student learns to recover
from them (Kang et al. 2025). A teacher run that crashed outright is dropped as "teacher_error"; a metric that
raises is logged with its message and counted as "metric_error" (never silently as a wrong answer).

The metric grades exactly what it grades at evaluation: the program's own prediction (`CodeAgent.outputs` of a
`Trajectory` object, the signature's output field; `ChainOfThoughtSolver.prediction` for the CoT baseline).

    from agentdistill.optimizers.filtering import filter_trajectories
    kept, report = filter_trajectories(pairs, metric, program=student)   # pairs: [(example, trajectory_dict)]
    print(report.summary())                                # {"total": 40, "kept": 17, "dropped": {...}, ...}
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import dspy

from agentdistill.programs.trajectory import Trajectory, is_void

logger = logging.getLogger(__name__)

# Reasons in the order they are checked; `dropped_by` counts the first reason only, `reasons` counts all.
REASONS = ("teacher_error", "parse_error", "void_turn", "out_of_steps", "no_final_answer", "metric_error",
           "wrong_answer")
# Reasons that say the teacher did not solve the task (the others are about the form of a solved one).
UNSOLVED = ("teacher_error", "no_final_answer", "metric_error", "wrong_answer")


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)  # every failed check of every trajectory
    dropped_by: Counter = field(default_factory=Counter)  # the first failed check (sums to total - kept)
    kept_with_execution_errors: int = 0  # kept trajectories that recover from a failing step
    execution_error_steps: int = 0  # failing steps inside kept trajectories
    truncated: int = 0  # kept chats longer than the SFT max_length (filled in by the training step)
    per_example: dict = field(default_factory=dict)  # example_id -> "kept" | [reasons]
    metric_errors: dict = field(default_factory=dict)  # example_id -> "<Type>: <message>" of a raising metric

    @property
    def dropped(self) -> int:
        return self.total - self.kept

    @property
    def success_rate(self) -> float:
        """Fraction of teacher outputs whose answer the metric accepts (the teacher's solve rate)."""
        unsolved = sum(self.reasons[r] for r in UNSOLVED)
        return 0.0 if self.total == 0 else (self.total - unsolved) / self.total

    def summary(self) -> dict:
        d = asdict(self)
        d["reasons"] = {r: self.reasons.get(r, 0) for r in REASONS}
        d["dropped_by"] = {r: self.dropped_by.get(r, 0) for r in REASONS}
        d["dropped"] = self.dropped
        d["teacher_success_rate"] = round(self.success_rate, 4)
        return d

    def add(self, eid: str, reasons: list[str]) -> bool:
        """Count one output; True when it is kept."""
        self.total += 1
        self.reasons.update(reasons)
        if reasons:
            self.dropped_by[reasons[0]] += 1
            self.per_example[eid] = reasons
            return False
        self.kept += 1
        self.per_example[eid] = "kept"
        return True

    def why_nothing_kept(self) -> str:
        """The reasons of a filter that kept nothing, with the metric's own error when it raised."""
        text = ", ".join(f"{r}: {n}" for r, n in self.dropped_by.items() if n)
        if self.metric_errors:
            eid, message = next(iter(self.metric_errors.items()))
            text += f"; the metric raised on {len(self.metric_errors)} output(s), e.g. on {eid}: {message}"
        return text


def grade(metric: Callable, example, prediction, eid: str, report: FilterReport) -> str | None:
    """None when the metric accepts the prediction, else "wrong_answer" or "metric_error" (logged, with its text)."""
    try:
        ok = metric(example, prediction, None)
    except Exception as e:  # noqa: BLE001 - one ungradable answer must not end the compile; it is reported
        message = f"{type(e).__name__}: {e}"
        logger.warning("the metric raised on teacher output %s (counted as metric_error): %s", eid, message)
        report.metric_errors[eid] = message
        return "metric_error"
    return None if ok else "wrong_answer"


def _is_teacher_error(traj: Any) -> bool:
    return traj is None or (isinstance(traj, dict) and "error" in traj and "steps" not in traj)


def trajectory_reasons(example, traj: Trajectory, metric: Callable, program, eid: str = "",
                       report: FilterReport | None = None) -> list[str]:
    """Every reason to drop one trajectory ([] = keep). `program` (a CodeAgent) makes the metric's prediction."""
    reasons = []
    if traj.parse_errors:
        reasons.append("parse_error")
    if any(is_void(s) for s in traj.steps):
        reasons.append("void_turn")
    if traj.out_of_steps:
        reasons.append("out_of_steps")
    if not traj.finished or traj.final_answer is None:
        reasons.append("no_final_answer")
    else:
        # what CodeAgent.forward returns: the signature's output fields from final_answer(x), and the Trajectory
        prediction = dspy.Prediction(**program.outputs(traj), trajectory=traj)
        verdict = grade(metric, example, prediction, eid, report if report is not None else FilterReport())
        if verdict:
            reasons.append(verdict)
    return reasons


def execution_error_steps(traj: Trajectory) -> int:
    return sum(1 for s in traj.steps if s.error or s.error_kind)


def _ids(ids, n: int) -> list[str]:
    return list(ids) if ids is not None else [str(i) for i in range(n)]


def filter_trajectories(pairs: Iterable[tuple[Any, Any]], metric: Callable, *, program,
                        ids: Iterable[str] | None = None) -> tuple[list[tuple[Any, Any]], FilterReport]:
    """Keep (example, trajectory) pairs that pass every check; return them (as given) with a FilterReport.

    Args:
        pairs: (example, trajectory) with the trajectory as a dict (`Trajectory.to_dict()`, a store record), a
            `Trajectory`, or a teacher error ({"error": ...} / None).
        metric: metric(example, prediction, trace=None), given the prediction `program` returns at evaluation.
        program: the CodeAgent whose predictions the metric grades (the student: same signature as the teacher).
        ids: example ids for the report (default: positions).
    """
    pairs = list(pairs)
    report, kept = FilterReport(), []
    for eid, (example, traj) in zip(_ids(ids, len(pairs)), pairs):
        if _is_teacher_error(traj):
            report.add(eid, ["teacher_error"])
            continue
        t = traj if isinstance(traj, Trajectory) else Trajectory.from_dict(traj)
        if report.add(eid, trajectory_reasons(example, t, metric, program, eid, report)):
            n_err = execution_error_steps(t)
            report.execution_error_steps += n_err
            report.kept_with_execution_errors += int(n_err > 0)
            kept.append((example, traj))
    return kept, report


def filter_answers(pairs: Iterable[tuple[Any, Any]], metric: Callable, *, program, ids=None):
    """CoT baseline: keep (example, {"task", "reasoning", "answer", ...}) pairs whose answer the metric accepts,
    graded on `program.prediction(...)` (a ChainOfThoughtSolver: the prediction it returns at evaluation)."""
    pairs = list(pairs)
    report, kept = FilterReport(), []
    for eid, (example, out) in zip(_ids(ids, len(pairs)), pairs):
        if out is None or out.get("error"):
            reasons = ["teacher_error"]
        elif out.get("answer") in (None, ""):
            reasons = ["no_final_answer"]
        else:
            prediction = program.prediction(out.get("task") or dict(example.inputs()), out.get("reasoning"),
                                            out["answer"], out.get("raw", ""), out.get("parse_error"))
            verdict = grade(metric, example, prediction, eid, report)
            reasons = [verdict] if verdict else []
        if report.add(eid, reasons):
            kept.append((example, out))
    return kept, report
