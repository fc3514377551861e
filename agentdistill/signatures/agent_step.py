"""`AgentStep`: one step of a code-acting agent (the task and the conversation so far -> thought + code).

The `CodeAgent` calls one `dspy.Predict(AgentStep)` per step, so DSPy's trace holds one entry per step whose inputs
are exactly the conversation up to that step (`history`) - the unit an SFT example or a demo is built from.
"""

from typing import Any

import dspy


class AgentStep(dspy.Signature):
    """Solve the task by reasoning step by step and acting with Python code."""

    task: dict[str, Any] = dspy.InputField(desc="the task's input fields by name, e.g. {'question': ...}")
    tools: list[dict[str, Any]] = dspy.InputField(
        desc="functions the code may call: {'name', 'signature', 'doc'} each (final_answer included)"
    )
    history: list[dict[str, Any]] = dspy.InputField(
        desc="the previous steps, oldest first: {'text': the assistant turn, 'observation': what its code printed}"
    )
    prefix: str | None = dspy.InputField(
        default=None, desc="first-thought prefix: the step's thought must start with it (step 1 only)"
    )
    thought: str = dspy.OutputField(desc="reasoning about what to do next")
    code: str = dspy.OutputField(desc="Python code to run next; calls final_answer(...) when done")
