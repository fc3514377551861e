"""Teacher tasks in threads: `run_threads(fn, items, num_threads, description)` - DSPy's ParallelExecutor (the
caller's dspy.context in every thread), a rich progress bar, and one failed task reported, not fatal.

    results = run_threads(lambda ex: teacher(**ex.inputs()), trainset, num_threads=8, description="teacher")
    [r for r in results if is_task_error(r)]      # {"error": "<Type>: <msg>"} per failed task
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from dspy.utils.parallelizer import ParallelExecutor

logger = logging.getLogger(__name__)


def run_threads(fn: Callable[[Any], Any], items: list, num_threads: int, description: str) -> list:
    """fn(item) for every item in `num_threads` threads (DSPy context carried over), with a rich progress bar.

    Returns results in item order; an exception in fn is returned as {"error": "<Type>: <msg>"} (logged), so one
    failing task does not lose the others' work.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from agentdistill.progress import Progress

    def guarded(item):
        try:
            return fn(item)
        except Exception as e:  # noqa: BLE001 - reported per task, counted by the filter as teacher_error
            logger.warning("%s failed on one task: %s: %s", description, type(e).__name__, e)
            return {"error": f"{type(e).__name__}: {e}"}

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False, disable=not items) as progress:
        task = progress.add_task(description, total=len(items))

        def one(item):
            out = guarded(item)
            progress.advance(task)
            return out

        # DSPy's executor carries the caller's dspy.context into each thread. timeout=0: no straggler resubmission
        # (a teacher task runs minutes on a CPU; a second copy would only ask the teacher the same thing again).
        results = ParallelExecutor(num_threads=max(1, num_threads), max_errors=len(items) + 1,
                                   disable_progress_bar=True, timeout=0).execute(one, items) if items else []
    failed = [r for r in results if is_task_error(r)]
    if items and len(failed) == len(items):  # nothing worked: a setup problem, not a hard task - say so
        raise RuntimeError(f"{description}: every task failed; first error: {failed[0]['error']}")
    return results


def is_task_error(result) -> bool:
    """A task that `run_threads` reported as failed ({"error": "<Type>: <msg>"})."""
    return isinstance(result, dict) and set(result) == {"error"}
