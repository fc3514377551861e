"""The DSPy behaviour agentdistill.dspy_compat relies on, checked against the installed DSPy.

Written for DSPy 3.4.1. On another minor version the first test fails: check each test below against the new DSPy,
change the shims in agentdistill/dspy_compat.py where they no longer hold, then update WRITTEN_FOR.
"""

import warnings

import dspy
import pytest

from agentdistill.dspy_compat import WRITTEN_FOR, adapter_message_call
from tests.programs.scripted import scripted_lm

MESSAGES = [{"role": "user", "content": "2 + 2?"}]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_written_for_the_installed_dspy():
    assert WRITTEN_FOR == "3.4.1"
    assert _minor(dspy.__version__) == _minor(WRITTEN_FOR), (
        f"agentdistill.dspy_compat was written for DSPy {WRITTEN_FOR}, this is {dspy.__version__}: re-check "
        "tests/test_dspy_compat.py and the shims it names, then update WRITTEN_FOR")


def _deprecations(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning) and "messages=" in str(w.message)]


def test_a_messages_call_warns_unless_marked_as_the_adapters_own():
    lm, _ = scripted_lm(["4", "4", "4"])
    assert _deprecations(lambda: lm(messages=MESSAGES)), "DSPy no longer warns on messages=: the shim may go"

    def marked():
        with adapter_message_call(lm, MESSAGES):
            assert lm(messages=MESSAGES) == ["4"]

    assert _deprecations(marked) == []

    def other_messages():
        with adapter_message_call(lm, MESSAGES):
            lm(messages=list(MESSAGES))  # an equal list, not the marked one

    assert _deprecations(other_messages)  # the mark is exact: it never hides a user's own call


def test_our_adapters_calls_do_not_warn():
    from agentdistill.programs import ChainOfThoughtSolver

    solver = ChainOfThoughtSolver("question -> answer")
    lm, engine = scripted_lm(["2 plus 2 is 4.\n\nAnswer: 4"])
    solver.set_lm(lm)
    found = []
    assert _deprecations(lambda: found.append(solver(question="2 + 2?"))) == []
    assert found[0].answer == "4" and engine.requests[0]["messages"][-1]["content"] == "Question: 2 + 2?"


@pytest.mark.parametrize("signature", ["question -> answer", "question, context -> answer, confidence"])
def test_the_generated_instructions_are_those_of_make_signature(signature):
    # programs/task.py tells a user's instructions from DSPy's generated ones by this equality
    sig = dspy.Signature(signature)
    assert sig.instructions == dspy.make_signature(dict(sig.fields)).instructions
    assert sig.instructions.startswith("Given the fields `question`")
