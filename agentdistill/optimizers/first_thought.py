"""First-thought prefixes (Kang et al. 2025, sec. 3.2): seed the agent's first thought with the teacher's own
chain-of-thought opening, so the agent plans before it codes.

The teacher LM answers the question with a chain of thought; the first paragraph of that reasoning (up to
the first blank line) becomes the prefix that the agent's first thought continues.

    from agentdistill.optimizers.first_thought import first_paragraph, generate_prefix
    first_paragraph("Let x be the price.\\n\\nThen 3x = 12.")   # -> "Let x be the price."
    prefix = generate_prefix({"question": q}, lm=teacher_lm)["prefix"]   # one teacher call
"""

from __future__ import annotations

import re
from typing import Any

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


PREFIX_MAX_TOKENS = 160  # only the first paragraph is kept, so the teacher stops early (blank line or this)


def generate_prefix(task: dict[str, Any], lm: dspy.BaseLM, signature: str | type = "question -> answer",
                    instructions: str | None = None, max_tokens: int = PREFIX_MAX_TOKENS) -> dict[str, Any]:
    """Ask the teacher LM for a chain of thought on `task` and cut its first paragraph.

    The teacher answers through the project's CoT program (`ChainOfThoughtSolver`, the plain "reasoning, then
    Answer:" format a small model follows) and stops at the first blank line. Returns {"prefix", "reasoning"}.
    """
    from agentdistill.programs import ChainOfThoughtSolver

    solver = ChainOfThoughtSolver(signature, instructions=instructions, max_tokens=max_tokens)
    stop_lm = lm.copy(stop=["\n\n"]) if hasattr(lm, "copy") else lm
    solver.set_lm(stop_lm)
    pred = solver(**task)
    reasoning = pred.reasoning or ""
    return {"prefix": first_paragraph(reasoning), "reasoning": reasoning}
