"""Parse a model's reply into (thought, code) for the agent, and into (reasoning, answer) for the CoT baseline.

    parse_step("Thought: add them.\\n```python\\nprint(2 + 2)\\n```")  -> ParsedStep(thought="add them.", code=...)

Lenient where small models are sloppy (a missing closing fence because generation stopped, ```py / bare fences,
a missing "Thought:" label), strict where it matters: no code block, or an empty one, is a parse error that the
agent turns into an observation saying how to fix it.
"""

import re
from dataclasses import dataclass

from agentdistill.benchmarks.math_grading import last_boxed  # the one boxed-answer extraction
from agentdistill.programs import rendering

# An opening fence with an optional language tag; the code runs to the next fence or to the end of the reply.
_FENCE = re.compile(r"```[ \t]*(python3?|py|Python)?[ \t]*\n", re.MULTILINE)
_CLOSE = re.compile(r"^[ \t]*```", re.MULTILINE)
_THOUGHT_LABEL = re.compile(r"^\s*(?:\*\*)?thought(?:\*\*)?\s*:\s*", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^[ \t*#]*(?:final[ \t]+)?answer[ \t*]*:[ \t*]*(.*)$", re.IGNORECASE | re.MULTILINE)
# "The final answer is: 15." (Minerva's phrase; small CoT students end this way instead of an "Answer:" line)
_ANSWER_SENTENCE = re.compile(r"\b(?:final\s+)?answer\s+is\s*:?[ \t*]*([^\n]+?)[ \t*]*\.?[ \t]*$",
                              re.IGNORECASE | re.MULTILINE)


@dataclass
class ParsedStep:
    raw: str  # the reply as generated (with a first-thought prefix prepended)
    thought: str
    code: str | None  # None when there is no runnable code block
    parse_error: str | None  # the observation to show the model instead of running code

    @property
    def text(self) -> str:
        """The assistant turn recorded in the conversation: re-rendered when parsed, the raw reply otherwise."""
        if self.code is None:
            return self.raw.strip()
        return rendering.render_step(self.thought, self.code)


def parse_step(raw: str) -> ParsedStep:
    """The first fenced code block of a reply and the thought before it."""
    match = _FENCE.search(raw)
    if match is None:
        return ParsedStep(raw, _strip_label(raw), None, rendering.render_parse_error())
    thought = _strip_label(raw[: match.start()])
    rest = raw[match.end():]
    close = _CLOSE.search(rest)
    code = (rest[: close.start()] if close else rest).strip("\n").rstrip()
    if not code.strip():
        return ParsedStep(raw, thought, None, rendering.render_parse_error(empty_code=True))
    return ParsedStep(raw, thought, code, None)


def _strip_label(text: str) -> str:
    return _THOUGHT_LABEL.sub("", text, count=1).strip()


@dataclass
class ParsedAnswer:
    raw: str
    reasoning: str
    answer: str | None  # None when the reply has no "Answer:" line and no \boxed{...}
    parse_error: str | None


def parse_cot(raw: str) -> ParsedAnswer:
    """Reasoning, then the last "Answer: ..." line (or, failing that, the last \\boxed{...}, then the last "the
    (final) answer is ..." sentence ending a line)."""
    matches = list(_ANSWER_LINE.finditer(raw))
    if matches:
        last = matches[-1]
        answer = last.group(1).strip()
        if answer:
            return ParsedAnswer(raw, raw[: last.start()].strip(), answer, None)
    boxed = last_boxed(raw)
    if boxed is not None:
        return ParsedAnswer(raw, raw.strip(), boxed, None)
    sentences = list(_ANSWER_SENTENCE.finditer(raw))
    if sentences and sentences[-1].group(1).strip():
        return ParsedAnswer(raw, raw[: sentences[-1].start()].strip(), sentences[-1].group(1).strip(), None)
    return ParsedAnswer(raw, raw.strip(), None, 'no "Answer: ..." line in the reply')
