"""Filtering teacher outputs before fine-tuning, with a report that counts every reason.

A trajectory is kept when (1) the metric says its final answer is right, (2) no step failed to parse and
(3) it did not run out of steps. Steps whose code raised an execution error stay: the student learns to
recover from them (Kang et al. 2025). A teacher run that crashed outright is dropped as "teacher_error".

    from agentdistill.optimizers.filtering import filter_trajectories
    kept, report = filter_trajectories(pairs, metric)      # pairs: [(example, trajectory_dict)]
    print(report.summary())                                # {"total": 40, "kept": 17, "dropped": {...}, ...}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import dspy

# Reasons in the order they are checked; `dropped_by` counts the first reason only, `reasons` counts all.
REASONS = ("teacher_error", "parse_error", "out_of_steps", "no_final_answer", "wrong_answer")


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)  # every failed check of every trajectory
    dropped_by: Counter = field(default_factory=Counter)  # the first failed check (sums to total - kept)
    kept_with_execution_errors: int = 0  # kept trajectories that recover from a failing step
    execution_error_steps: int = 0  # failing steps inside kept trajectories
    per_example: dict = field(default_factory=dict)  # example_id -> "kept" | [reasons]

    @property
    def dropped(self) -> int:
        return self.total - self.kept

    @property
    def success_rate(self) -> float:
        """Fraction of teacher outputs whose answer the metric accepts (the teacher's solve rate)."""
        return 0.0 if self.total == 0 else (self.total - self.reasons["wrong_answer"]
                                            - self.reasons["teacher_error"]
                                            - self.reasons["no_final_answer"]) / self.total

    def summary(self) -> dict:
        d = asdict(self)
        d["reasons"] = {r: self.reasons.get(r, 0) for r in REASONS}
        d["dropped_by"] = {r: self.dropped_by.get(r, 0) for r in REASONS}
        d["dropped"] = self.dropped
        d["teacher_success_rate"] = round(self.success_rate, 4)
        return d


def _get(obj: Any, name: str, default=None):
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def trajectory_reasons(example, traj: Any, metric: Callable) -> list[str]:
    """Every reason to drop one trajectory (dict from Trajectory.to_json() or a Trajectory); [] = keep."""
    if traj is None or _get(traj, "error"):
        return ["teacher_error"]
    reasons = []
    parse_errors = _get(traj, "parse_errors", 0) or 0
    if not isinstance(parse_errors, int):  # a list of error messages
        parse_errors = len(parse_errors)
    if parse_errors:
        reasons.append("parse_error")
    if _get(traj, "out_of_steps", False):
        reasons.append("out_of_steps")
    if not _get(traj, "finished", True) or _get(traj, "final_answer") is None:
        reasons.append("no_final_answer")
    else:
        answer = _get(traj, "final_answer")
        pred = dspy.Prediction(answer=answer if isinstance(answer, str) else str(answer), trajectory=traj)
        try:
            ok = metric(example, pred, None)
        except Exception:  # a metric that cannot grade this answer counts it wrong, it does not crash compile
            ok = False
        if not ok:
            reasons.append("wrong_answer")
    return reasons


def execution_error_steps(traj: Any) -> int:
    steps = _get(traj, "steps", []) or []
    return sum(1 for s in steps if _get(s, "error") or _get(s, "error_kind"))


def filter_trajectories(
    pairs: Iterable[tuple[Any, Any]], metric: Callable, ids: Iterable[str] | None = None
) -> tuple[list[tuple[Any, Any]], FilterReport]:
    """Keep (example, trajectory) pairs that pass every check; return them with a FilterReport."""
    pairs = list(pairs)
    ids = list(ids) if ids is not None else [str(i) for i in range(len(pairs))]
    report, kept = FilterReport(), []
    for eid, (example, traj) in zip(ids, pairs):
        report.total += 1
        reasons = trajectory_reasons(example, traj, metric)
        report.reasons.update(reasons)
        if reasons:
            report.dropped_by[reasons[0]] += 1
            report.per_example[eid] = reasons
            continue
        report.kept += 1
        report.per_example[eid] = "kept"
        n_err = execution_error_steps(traj)
        report.execution_error_steps += n_err
        report.kept_with_execution_errors += int(n_err > 0)
        kept.append((example, traj))
    return kept, report


def filter_answers(pairs: Iterable[tuple[Any, Any]], metric: Callable, ids=None):
    """CoT baseline: keep (example, {"reasoning", "answer"}) pairs whose answer the metric accepts."""
    pairs = list(pairs)
    ids = list(ids) if ids is not None else [str(i) for i in range(len(pairs))]
    report, kept = FilterReport(), []
    for eid, (example, out) in zip(ids, pairs):
        report.total += 1
        if out is None or out.get("error") or out.get("answer") in (None, ""):
            reasons = ["teacher_error" if out is None or out.get("error") else "no_final_answer"]
        else:
            try:
                ok = metric(example, dspy.Prediction(**out), None)
            except Exception:
                ok = False
            reasons = [] if ok else ["wrong_answer"]
        report.reasons.update(reasons)
        if reasons:
            report.dropped_by[reasons[0]] += 1
            report.per_example[eid] = reasons
        else:
            report.kept += 1
            report.per_example[eid] = "kept"
            kept.append((example, out))
    return kept, report
