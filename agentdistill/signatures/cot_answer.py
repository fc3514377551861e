"""`CoTAnswer`: the task -> reasoning and a final answer in one call, no tools (the CoT-distillation baseline)."""

from typing import Any

import dspy


class CoTAnswer(dspy.Signature):
    """Solve the task. Think step by step, then give the final answer."""

    task: dict[str, Any] = dspy.InputField(desc="the task's input fields by name, e.g. {'question': ...}")
    reasoning: str = dspy.OutputField(desc="step-by-step reasoning")
    answer: str = dspy.OutputField(desc="the final answer only")
