"""ChainOfThoughtSolver: one call, rendered through the CoT templates; its chat is the SFT example."""

import dspy
import pytest
from scripted import scripted_lm

from agentdistill.programs import ChainOfThoughtSolver, cot_chat


def test_solves_in_one_call_and_its_chat_is_what_the_model_saw():
    lm, engine = scripted_lm(["15% of 80 is 0.15 * 80 = 12.\nAnswer: 12"])
    solver = ChainOfThoughtSolver("question -> answer")
    solver.set_lm(lm)
    with dspy.context(trace=[]):
        pred = solver(question="What is 15% of 80?")
        trace = list(dspy.settings.trace)
    assert (pred.answer, pred.reasoning) == ("12", "15% of 80 is 0.15 * 80 = 12.")
    assert len(engine.requests) == 1
    seen = engine.requests[0]["messages"]
    assert pred.messages[:-1] == seen  # byte-identical prompt
    assert pred.messages == cot_chat(solver.instructions, {"question": "What is 15% of 80?"}, pred.reasoning, "12")
    assert pred.messages[-1]["content"] == "15% of 80 is 0.15 * 80 = 12.\n\nAnswer: 12"
    assert len(trace) == 1 and trace[0][0] is solver.solve
    assert trace[0][1] == {"task": {"question": "What is 15% of 80?"}}


def test_missing_answer_line_gives_none_and_keeps_the_raw_reply():
    lm, _ = scripted_lm(["I am not sure."])
    solver = ChainOfThoughtSolver()
    solver.set_lm(lm)
    pred = solver(question="q")
    assert pred.answer is None and "Answer:" in pred.parse_error
    assert pred.messages[-1] == {"role": "assistant", "content": "I am not sure."}


def test_own_instructions_and_bad_signatures():
    class Math(dspy.Signature):
        """Solve the math word problem."""

        question: str = dspy.InputField()
        answer: str = dspy.OutputField()

    assert ChainOfThoughtSolver(Math).instructions == "Solve the math word problem."
    with pytest.raises(ValueError, match="one output field"):
        ChainOfThoughtSolver("question -> answer, source")
    with pytest.raises(ValueError, match="missing \\['question'\\]"):
        ChainOfThoughtSolver()(query="q")


def test_acall_is_the_same_call_awaited():
    import asyncio

    reply = "15% of 80 is 0.15 * 80 = 12.\nAnswer: 12"
    solver = ChainOfThoughtSolver("question -> answer", max_tokens=64)
    lm, engine = scripted_lm([reply, reply])
    solver.set_lm(lm)
    sync = solver(question="What is 15% of 80?")

    async def solve():
        with dspy.context(trace=[]):
            return await solver.acall(question="What is 15% of 80?"), list(dspy.settings.trace)

    pred, trace = asyncio.run(solve())
    assert (pred.answer, pred.reasoning, pred.messages) == (sync.answer, sync.reasoning, sync.messages)
    assert engine.requests[1] == engine.requests[0] and engine.requests[1]["max_tokens"] == 64
    assert pred.usage == sync.usage and len(trace) == 1 and trace[0][0] is solver.solve
    with pytest.raises(ValueError, match="ChainOfThoughtSolver with signature 'question -> answer' takes the inputs "
                                         r"\['question'\]; missing \['question'\], unknown \['query'\]"):
        asyncio.run(solver.acall(query="q"))
