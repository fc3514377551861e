"""First-thought prefixes (Kang et al. 2025, sec. 3.2): seed the agent's first thought with the teacher's own
chain-of-thought opening, so the agent plans before it codes.

The teacher LM answers the question with a chain of thought; the first paragraph of that reasoning (up to
the first blank line) becomes the prefix that the agent's first thought continues.

    from agentdistill.optimizers.first_thought import first_paragraph, generate_prefix
    first_paragraph("Let x be the price.\\n\\nThen 3x = 12.")   # -> "Let x be the price."
    prefix = generate_prefix(question, lm=teacher_lm)            # one teacher call
"""

from __future__ import annotations

import re

import dspy

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# Field headers a model sometimes echoes at the start of its reasoning; they are not part of the thought.
_LEADING_LABEL = re.compile(r"^\s*(?:\[\[ ## \w+ ## \]\]|reasoning:|thought:)\s*", re.IGNORECASE)

MAX_PREFIX_CHARS = 600  # a runaway first "paragraph" (no blank line at all) is cut at a sentence end


def first_paragraph(text: str | None, max_chars: int = MAX_PREFIX_CHARS) -> str:
    """The first paragraph of a chain of thought: everything before the first blank line, stripped.

    Returns "" for empty input. A paragraph longer than `max_chars` is cut at the last sentence end
    before the limit (or at the limit when there is none).
    """
    if not text:
        return ""
    text = _LEADING_LABEL.sub("", text.strip(), count=1).strip()
    para = _BLANK_LINE.split(text, maxsplit=1)[0].strip()
    if len(para) <= max_chars:
        return para
    cut = para[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    return (cut[: end + 1] if end > 0 else cut).strip()


def _first_thought_signature():
    # The programs helper owns the FirstThought signature; a plain CoT signature is the same question to
    # the teacher when it is absent (then the `reasoning` field of ChainOfThought is the chain of thought).
    try:
        from agentdistill.signatures import FirstThought

        return FirstThought
    except ImportError:
        return dspy.Signature("question -> answer", "Solve the problem step by step.")


def generate_prefix(question: str, lm: dspy.LM | None = None) -> dict:
    """Ask the teacher LM for a chain of thought and cut its first paragraph.

    Returns {"prefix": str, "reasoning": str}: the full reasoning is kept in the store for inspection.
    """
    signature = _first_thought_signature()
    out_fields = list(signature.output_fields)
    # A signature whose output already is the thought (e.g. `question -> first_thought`) is predicted
    # directly; a question -> answer signature goes through ChainOfThought to get a `reasoning` field.
    predictor = dspy.ChainOfThought(signature) if "answer" in out_fields else dspy.Predict(signature)
    with dspy.context(lm=lm) if lm is not None else _nullcontext():
        pred = predictor(question=question)
    reasoning = pred.get("reasoning") or next(
        (pred.get(f) for f in out_fields if isinstance(pred.get(f), str) and pred.get(f)), ""
    )
    return {"prefix": first_paragraph(reasoning), "reasoning": reasoning or ""}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
