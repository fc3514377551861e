"""A scripted teacher for distillation tests: one reply function drives the real CodeAgent loop (and the prefix CoT).

Its CoT answer (the call that makes the first-thought prefix) is two paragraphs and an answer line; the prefix is
the first paragraph, PREFIX, which has a single line break inside (only a blank line ends a paragraph).

Tasks are "What is A + B?". The teacher's behaviour per task is chosen by the numbers, so tests know in advance
which trajectories the filter must keep:  A % 5 == 1 -> a wrong answer,  A % 5 == 2 -> a reply without code
(parse error) then the right answer,  A % 5 == 3 -> prints forever (out of steps),  A % 5 == 4 -> an execution error
first, then recovers (kept),  else -> right in two steps (kept).
"""

import re

import dspy

from tests.programs.scripted import ScriptedEngine

PREFIX = "I need to add the two numbers.\nThen I print the sum."


def _numbers(messages):
    m = re.search(r"What is (\d+) \+ (\d+)\?", messages[1]["content"] if len(messages) > 1 else "")
    return int(m.group(1)), int(m.group(2))


def teacher_reply(messages):
    system = messages[0]["content"]
    a, b = _numbers(messages)
    if "Think step by step" in system:  # the CoT call that makes the first-thought prefix
        return f"{PREFIX}\n\nThe sum is {a + b}.\n\nAnswer: {a + b}"
    steps_done = sum(1 for m in messages[2:] if m["role"] == "user")  # one observation per finished step
    continuing = messages[-1]["role"] == "assistant"  # a first-thought prefix to continue
    kind = a % 5
    if kind == 3:
        body = f" Keep printing.\n```python\nprint({a})\n```"
    elif kind == 2 and steps_done == 0:
        body = " I think the answer is obvious."  # no code block: a parse error
    elif kind == 4 and steps_done == 0:
        body = f" Use a helper.\n```python\nprint(undefined_helper({a}, {b}))\n```"
    elif steps_done == 0:
        body = f" Compute it.\n```python\nprint({a} + {b})\n```"
    else:
        answer = a + b + (1 if kind == 1 else 0)
        body = f" Done.\n```python\nfinal_answer({answer})\n```"
    return body if continuing else "Thought:" + body


class CountingEngine(ScriptedEngine):
    """Replies forever with `reply` (default: teacher_reply); raises on the tasks whose A is in fail_on (a teacher
    server that went away mid-run)."""

    def __init__(self, fail_on=(), reply=teacher_reply):
        super().__init__([])
        self.fail_on, self.reply = set(fail_on), reply

    def complete(self, request):
        self.replies = [self._reply]
        return super().complete(request)

    def _reply(self, messages):
        a, b = _numbers(messages)
        if a in self.fail_on:
            raise RuntimeError(f"teacher server went away on task {a}")
        return self.reply(messages)

    def questions(self):
        return [_numbers(r["messages"]) for r in self.requests]


def teacher_lm(fail_on=()):
    engine = CountingEngine(fail_on)
    return dspy.LM("scripted/teacher", engine=engine, cache=False), engine


def tasks(numbers):
    return [dspy.Example(id=i, question=f"What is {a} + {a + 7}?", answer=str(2 * a + 7)).with_inputs("question")
            for i, a in enumerate(numbers)]


def metric(example, pred, trace=None):
    return str(pred.answer).strip() == str(example.answer)
