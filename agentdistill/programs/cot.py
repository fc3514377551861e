"""`ChainOfThoughtSolver`: reasoning and a final answer in one LM call, no tools (the CoT-distillation baseline).

    solver = ChainOfThoughtSolver("question -> answer")
    pred = solver(question="What is 15% of 80?")      # pred.answer, pred.reasoning, pred.messages
    chat = cot_chat(solver.instructions, {"question": q}, reasoning, answer)   # the SFT example of one CoT

Rendered by `CoTAdapter` through the same templates as its SFT data (agentdistill/templates/cot_*.jinja):
system (instructions + 'end with "Answer: ..."'), user (the task), assistant (reasoning, blank line, "Answer: x").
"""

import time

import dspy
from dspy.signatures.signature import ensure_signature
from dspy.utils.usage_tracker import track_usage

from agentdistill.programs import rendering
from agentdistill.programs.adapter import CoTAdapter
from agentdistill.programs.task import own_instructions, task_from
from agentdistill.signatures import CoTAnswer

DEFAULT_COT_INSTRUCTIONS = "Answer the question."


class ChainOfThoughtSolver(dspy.Module):
    """One-call chain of thought: `pred.<output>` is the text after the last "Answer:" line (None if missing).

    Args:
        signature: the task, with exactly one output field, e.g. "question -> answer".
        instructions: the task description in the system prompt (default: the signature's own, if written).
        max_tokens: generation limit passed to the LM (default: the LM's own).
    """

    def __init__(self, signature="question -> answer", instructions: str | None = None, max_tokens: int | None = None):
        super().__init__()
        self.signature = ensure_signature(signature)
        if len(self.signature.output_fields) != 1:
            raise ValueError(
                f"ChainOfThoughtSolver answers one output field; {self.signature.signature!r} has "
                f"{list(self.signature.output_fields)}. Use a signature like 'question -> answer'."
            )
        self.output_name = next(iter(self.signature.output_fields))
        text = instructions or own_instructions(self.signature) or DEFAULT_COT_INSTRUCTIONS
        self.max_tokens = max_tokens
        self.solve = dspy.Predict(CoTAnswer.with_instructions(text))
        self.adapter = CoTAdapter()

    @property
    def instructions(self) -> str:
        """The task description of the system prompt: the predictor's instructions (optimizers may edit them)."""
        return self.solve.signature.instructions

    def task_from(self, inputs: dict) -> dict:
        return task_from(self.signature, inputs, type(self).__name__)

    def forward(self, **inputs) -> dspy.Prediction:
        task, start = self.task_from(inputs), time.perf_counter()
        with track_usage() as tracker, dspy.context(adapter=self.adapter):
            pred = self.solve(task=task, config=self.lm_config())
        return self.solved(task, pred, tracker, start)

    async def aforward(self, **inputs) -> dspy.Prediction:
        """`await solver.acall(question=...)`: the same call, awaited through the LM's async engine."""
        task, start = self.task_from(inputs), time.perf_counter()
        with track_usage() as tracker, dspy.context(adapter=self.adapter):
            pred = await self.solve.acall(task=task, config=self.lm_config())
        return self.solved(task, pred, tracker, start)

    def lm_config(self) -> dict:
        return {"max_tokens": self.max_tokens} if self.max_tokens else {}

    def solved(self, task: dict, pred: dspy.Prediction, tracker, start: float) -> dspy.Prediction:
        return self.prediction(task, pred.reasoning, pred.answer, pred.raw, pred.parse_error,
                               usage=tracker.get_total_tokens(), seconds=time.perf_counter() - start)

    def chat(self, task: dict, reasoning: str | None, answer: str | None, raw: str = "") -> list[dict]:
        """The conversation of one solve: re-rendered from (reasoning, answer) when parsed, the raw reply if not."""
        if answer is not None:
            return rendering.cot_chat(self.instructions, task, reasoning, answer)
        return rendering.cot_chat(self.instructions, task) + [{"role": "assistant", "content": raw.strip()}]

    def prediction(self, task, reasoning, answer, raw, parse_error, **extra) -> dspy.Prediction:
        return dspy.Prediction(
            **{self.output_name: answer}, reasoning=reasoning, parse_error=parse_error,
            messages=self.chat(task, reasoning, answer, raw), **extra,
        )
