"""`FirstThought`: the task -> the first step of a chain of thought.

Kang et al. (2025) seed the agent's first step with a teacher's first reasoning step ("first-thought prefix"):
`CodeAgent(...)(question=q, first_thought_prefix=dspy.Predict(FirstThought)(question=q).first_thought)`.
"""

import dspy


class FirstThought(dspy.Signature):
    """Write only the first step of your reasoning about how to solve the question: one or two sentences that
    plan the approach. Do not solve the question and do not give the answer."""

    question: str = dspy.InputField()
    first_thought: str = dspy.OutputField(desc="the first reasoning step, one or two sentences")
