"""Teacher tasks in threads (teacher_runs.run_threads): item order, the caller's dspy.context in every thread, one
failed task reported as its error, every task failing raised with the first cause."""

import dspy
import pytest

from agentdistill.optimizers import teacher_runs
from tests.programs.scripted import scripted_lm


def test_run_threads_keeps_order_and_the_dspy_context_and_reports_each_failure():
    lm, _ = scripted_lm([])

    def task(i):
        if i == 2:
            raise ValueError("task two is broken")
        return (i, dspy.settings.lm is lm)

    with dspy.context(lm=lm):
        out = teacher_runs.run_threads(task, [0, 1, 2, 3], num_threads=2, description="tasks")
    assert out[:2] == [(0, True), (1, True)] and out[3] == (3, True)
    assert teacher_runs.is_task_error(out[2]) and out[2]["error"] == "ValueError: task two is broken"
    with pytest.raises(RuntimeError, match="every task failed; first error: ValueError"):
        teacher_runs.run_threads(lambda i: int("x"), [0, 1], num_threads=2, description="tasks")
