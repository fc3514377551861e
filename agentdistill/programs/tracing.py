"""MLflow trace spans for an agent's steps: under `mlflow.dspy.autolog()`, each step of a `CodeAgent` (and of
`SelfConsistency`, which runs the same loop) is a span holding the code that ran, its observation and error, the
self-consistency candidates and their vote, with one child span per host tool call (e.g. `search`).

    mlflow.dspy.autolog()
    agent(question="...")        # trace: CodeAgent.forward > step 1 > (Predict.forward, search) > step 2 > ...

Spans are made only inside a trace that is already recording (autolog's span of the agent call), so without
autolog this costs nothing and never imports MLflow. During bulk teacher generation leave autolog off (or call
`mlflow.dspy.autolog(disable=True)`): a trace per task costs time and store space for nothing distillation uses.
"""

from __future__ import annotations

import contextlib
import sys


def _active_span():
    mlflow = sys.modules.get("mlflow")  # not imported: nobody can be tracing
    if mlflow is None:
        return None
    try:
        return mlflow.get_current_active_span()
    except Exception:  # tracing disabled or misconfigured: the agent runs untraced
        return None


@contextlib.contextmanager
def step_span(index: int):
    """The span of step `index` (0-based) while it runs, or None when no trace is recording."""
    if _active_span() is None:
        yield None
        return
    import mlflow

    with mlflow.start_span(name=f"step {index + 1}", span_type="AGENT") as span:
        yield span


def record_step(span, step) -> None:
    """What the step did, on its span: inputs (thought, code), outputs (observation, error, final answer), the
    candidates and their vote (SelfConsistency), and a TOOL span per host tool call."""
    if span is None:
        return
    import mlflow

    span.set_inputs({"thought": step.thought, "code": step.code})
    span.set_outputs({"observation": step.observation, "error": step.error, "error_kind": step.error_kind,
                      "is_final": step.is_final, "final_answer": step.final_answer})
    attributes = {"parse_error": step.parse_error, "exec_seconds": step.exec_seconds}
    if step.candidates is not None:
        attributes.update(candidates=step.candidates, valid_fraction=step.valid_fraction, agreement=step.agreement)
    span.set_attributes(attributes)
    for call in step.tool_calls:  # recorded by the sandbox's host-tool channel as the code ran
        with mlflow.start_span(name=str(call.get("name", "tool")), span_type="TOOL") as tool:
            tool.set_inputs({"args": call.get("args"), "kwargs": call.get("kwargs")})
            tool.set_outputs(call["result"] if "result" in call else {"error": call.get("error")})
