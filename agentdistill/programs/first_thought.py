"""`FirstThoughtGenerator`: the first step of an LM's chain of thought, used as the agent's first-thought prefix.

    gen = FirstThoughtGenerator(); gen.set_lm(teacher_lm)
    prefix = gen(question=q).first_thought                 # e.g. "First, find who directed Ed Wood."
    agent(question=q, first_thought_prefix=prefix)         # step 1 starts "Thought: <prefix>" and continues

Kang et al. (2025) seed the agent's first thought with the first step of the teacher's CoT reasoning. We prompt
exactly as the CoT baseline does (same templates), stop early (the rest of the CoT is not needed) and keep the
first step: its first paragraph, cut to its first sentences when it is long.
"""

import re

import dspy
from dspy.clients._deprecation import adapter_message_call

from agentdistill.programs import rendering
from agentdistill.programs.adapter import output_text
from agentdistill.programs.cot import DEFAULT_COT_INSTRUCTIONS
from agentdistill.signatures import FirstThought

_LABEL = re.compile(r"^\s*(?:\*\*)?(?:thought|step\s*1|first(?:ly)?\s*step|reasoning)(?:\*\*)?\s*[:.)-]\s*", re.I)


def first_step(reasoning: str, max_chars: int = 300) -> str:
    """The first step of a chain of thought (see the module docstring); "" if there is none."""
    text = _LABEL.sub("", (reasoning or "").strip(), count=1)
    paragraph = re.split(r"\n\s*\n", text, maxsplit=1)[0].strip()
    if len(paragraph) <= max_chars:
        return paragraph
    sentences = re.split(r"(?<=[.!?])\s+", paragraph)
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + 1 + len(sentence) > max_chars:
            break
        kept += " " + sentence
    return kept[:max_chars].rstrip()


class FirstThoughtAdapter(dspy.Adapter):
    """Renders `FirstThought` as the CoT prompt; parses the reply into its first step."""

    def __init__(self, instructions: str = DEFAULT_COT_INSTRUCTIONS, callbacks=None):
        super().__init__(callbacks=callbacks)
        self.instructions = instructions

    def format(self, signature, demos, inputs):
        return rendering.cot_chat(self.instructions, {k: inputs[k] for k in signature.input_fields})

    def parse(self, signature, completion):
        return {"first_thought": first_step(completion)}

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.format(signature, demos, inputs)
        with adapter_message_call(lm, messages):
            outputs = lm(messages=messages, **lm_kwargs)
        return [self.parse(signature, output_text(o)) for o in outputs]


class FirstThoughtGenerator(dspy.Module):
    """question -> first_thought (one traced `dspy.Predict(FirstThought)` call on the CoT prompt).

    Args:
        instructions: the CoT task description (default: the CoT baseline's).
        max_tokens: generation limit; the first step is short, so the rest of the CoT is not generated.
    """

    def __init__(self, instructions: str = DEFAULT_COT_INSTRUCTIONS, max_tokens: int = 128):
        super().__init__()
        self.generate = dspy.Predict(FirstThought)
        self.adapter = FirstThoughtAdapter(instructions)
        self.max_tokens = max_tokens

    def forward(self, question: str) -> dspy.Prediction:
        with dspy.context(adapter=self.adapter):
            return self.generate(question=question, config={"max_tokens": self.max_tokens})
