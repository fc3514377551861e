"""SelfConsistency: n candidates per step, each in its own sandbox fork, majority vote on execution outputs.

The scripted LM is not a local engine, so agentdistill.lm.sample sends its n calls concurrently and the scripted
replies reach the candidates in arrival order: assertions below hold for any order ("first" = first in the
recorded candidate list, which is the order `sample` returned).
"""

import dspy
import pytest
from scripted import scripted_lm

from agentdistill.programs import ChainOfThoughtSolver, CodeAgent, SelfConsistency
from agentdistill.programs.self_consistency import normalize


def block(code: str, thought: str = "try") -> str:
    return f"Thought: {thought}\n```python\n{code}\n```"


@pytest.fixture(scope="module")
def agent():
    agent = CodeAgent("question -> answer", max_steps=3)
    yield agent
    agent.close()


def sag(agent, replies, n, **inputs):
    lm, engine = scripted_lm(replies)
    agent.set_lm(lm)
    with dspy.context(trace=[]):
        pred = SelfConsistency(agent, n=n, temperature=0.4, top_p=0.8)(question="q", **inputs)
        trace = list(dspy.settings.trace)
    return pred, engine, trace


def test_candidates_do_not_see_each_others_side_effects(agent):
    step1 = [
        block("log = ['c0']\nprint(len(log))"),
        block("log = globals().get('log', []) + ['c1']\nprint(len(log))"),  # would print 2 if it saw c0's log
        "Thought: no code at all",
    ]
    step2 = [block("final_answer(log)"), block("final_answer(log)"), block("raise ValueError('boom')")]
    pred, _, _ = sag(agent, step1 + step2, n=3)
    first = pred.trajectory.steps[0]
    ran = [c for c in first.candidates if c["parse_error"] is None]
    assert [c["observation"].strip() for c in ran] == ["1", "1"]  # neither saw the other's `log`
    assert first.valid_fraction == pytest.approx(2 / 3) and first.agreement == 1.0
    assert first.text == ran[0]["text"]  # tie on the output: the first candidate wins; its text is kept
    winner = "c0" if "'c0'" in first.text else "c1"
    assert pred.trajectory.final_answer == [winner]  # the episode adopted the winner's fork, and only it
    second = pred.trajectory.steps[1]
    assert second.valid_fraction == pytest.approx(2 / 3)  # the raising candidate was dropped


def test_vote_picks_the_majority_output(agent):
    step1 = [block("x = 7\nprint(x)"), block("x = 8\nprint(x)"), "no code", block("x = 8.0\nprint(x)"),
             block("x = 9\nprint(x)")]
    step2 = [block("final_answer(x)")] * 5
    pred, engine, trace = sag(agent, step1 + step2, n=5)
    first = pred.trajectory.steps[0]
    keys = [c["vote_key"] for c in first.candidates]
    assert sorted(k for k in keys if k) == ["output: 7", "output: 8", "output: 8", "output: 9"]  # 8 == 8.0
    assert first.text == first.candidates[keys.index("output: 8")]["text"]  # earliest of the majority
    assert first.valid_fraction == pytest.approx(4 / 5) and first.agreement == pytest.approx(2 / 4)
    assert normalize(pred.answer) == "8"
    # candidates were sampled with the SAG settings, from the same conversation
    assert {(r["temperature"], r["top_p"]) for r in engine.requests} == {(0.4, 0.8)}
    assert all(r["messages"] == engine.requests[0]["messages"] for r in engine.requests[:5])
    # one trace entry per step, holding the winner, like a single predictor call
    assert len(trace) == 2 and trace[0][0] is agent.step and trace[0][2].code == first.code
    assert trace[1][1]["history"] == [{"text": first.text, "observation": first.observation}]
    assert pred.trajectory.messages[3]["content"] == "Observation:\n" + first.observation


def test_nothing_survives_keeps_the_first_candidate_and_its_error(agent):
    step1 = [block("1 / 0"), block("undefined_name"), block("[][1]")]
    step2 = [block("final_answer(5)")] * 3
    pred, _, _ = sag(agent, step1 + step2, n=3)
    first = pred.trajectory.steps[0]
    assert first.text == first.candidates[0]["text"] and first.error == first.candidates[0]["error"]
    assert first.error is not None and first.observation == first.candidates[0]["observation"]
    assert first.valid_fraction == 0.0 and first.agreement == 0.0
    assert pred.answer == "5" and pred.trajectory.finished


def test_prefix_seeds_every_candidate_of_step_one(agent):
    replies = [" so print it.\n```python\nprint(2)\n```"] * 2 + [block("final_answer(2)")] * 2
    pred, engine, _ = sag(agent, replies, n=2, first_thought_prefix="It is two,")
    assert [r["messages"][-1]["content"] for r in engine.requests[:2]] == ["Thought: It is two,"] * 2
    assert engine.requests[2]["messages"][-1]["content"] == "Thought:"  # later steps: the bare seed
    assert pred.trajectory.steps[0].text.startswith("Thought: It is two, so print it.")


def test_self_consistent_cot_votes_on_final_answers():
    solver = ChainOfThoughtSolver()
    lm, engine = scripted_lm(["a\nAnswer: 12", "b\nAnswer: 13", "c\nAnswer: 12.0", "no answer", "d\nAnswer: 12"])
    solver.set_lm(lm)
    pred = SelfConsistency(solver, n=5)(question="What is 15% of 80?")
    assert sorted(pred.candidates, key=str) == ["12", "12", "12.0", "13", None]
    assert pred.answer == next(a for a in pred.candidates if a and normalize(a) == "12")
    assert pred.valid_fraction == pytest.approx(4 / 5) and pred.agreement == pytest.approx(3 / 4)
    assert pred.messages[-1]["content"].endswith("Answer: " + pred.answer)
    assert len(engine.requests) == 5


def test_normalize():
    assert normalize(" 4.0 ") == normalize(4) == "4"
    assert normalize("Paris\n") == normalize("paris") == "paris"
    assert normalize("1,000") == "1000"


def test_wraps_only_agents_and_solvers():
    with pytest.raises(TypeError, match="CodeAgent or a ChainOfThoughtSolver"):
        SelfConsistency(dspy.Predict("question -> answer"))
    with pytest.raises(ValueError, match="first_thought_prefix"):
        SelfConsistency(ChainOfThoughtSolver())(question="q", first_thought_prefix="First,")


# --- the vote, case by case (issue 13) -------------------------------------------------------------------------
def test_diverging_final_answers_take_the_majority(agent):
    replies = [block("final_answer(3)"), block("final_answer(4)"), block("final_answer(3)")]
    pred, _, _ = sag(agent, replies, n=3)
    step = pred.trajectory.steps[0]
    assert sorted(c["vote_key"] for c in step.candidates) == ["final: 3", "final: 3", "final: 4"]
    assert pred.answer == "3" and pred.trajectory.finished and pred.trajectory.final_answer == 3
    assert len(pred.trajectory.steps) == 1 and step.agreement == pytest.approx(2 / 3)


def test_a_two_two_tie_goes_to_the_earliest_group(agent):
    replies = [block("final_answer('a')"), block("final_answer('b')"), block("final_answer('b')"),
               block("final_answer('a')")]
    pred, _, _ = sag(agent, replies, n=4)
    step = pred.trajectory.steps[0]
    first_key = step.candidates[0]["vote_key"]  # arrival order decides which group comes first: read it back
    assert sorted(c["vote_key"] for c in step.candidates) == ["final: a", "final: a", "final: b", "final: b"]
    assert "final: " + pred.answer == first_key and step.text == step.candidates[0]["text"]
    assert step.agreement == pytest.approx(2 / 4)


def test_a_raising_majority_loses_to_the_valid_minority(agent):
    # three candidates print the same 7 and then raise: the most common output, but not a valid action
    raising = block("print(7)\nraise RuntimeError('after printing')")
    replies = [raising, block("final_answer(5)"), raising, raising]
    pred, _, _ = sag(agent, replies, n=4)
    step = pred.trajectory.steps[0]
    assert sum(c["error"] is not None for c in step.candidates) == 3
    assert step.error is None and pred.answer == "5" and pred.trajectory.finished
    assert step.valid_fraction == pytest.approx(1 / 4) and step.agreement == 1.0


def test_void_candidates_do_not_vote(agent):
    # two candidates that run nothing agree with each other (both print nothing): they must not outvote the one
    # that acts (SimpleTIR's void turns)
    replies = [block("# I will think first"), block("print(42)"), block("pass")] + [block("final_answer(42)")] * 3
    pred, _, _ = sag(agent, replies, n=3)
    step = pred.trajectory.steps[0]
    assert step.code == "print(42)" and step.observation.strip() == "42"
    assert step.void_candidates == 2
    assert sorted(bool(c["void"]) for c in step.candidates) == [False, True, True]
    assert [c["vote_key"] for c in step.candidates if c["void"]] == [None, None]
    assert step.valid_fraction == pytest.approx(1 / 3) and step.agreement == 1.0


def test_all_void_keeps_the_first_candidate_as_a_void_step(agent):
    from agentdistill.programs.trajectory import is_void

    replies = [block("# hmm"), block("'still thinking'"), block("final_answer(1)"), block("final_answer(1)")]
    pred, _, _ = sag(agent, replies, n=2)
    step = pred.trajectory.steps[0]
    assert step.void_candidates == 2 and step.valid_fraction == 0.0 and is_void(step)
    assert step.text == step.candidates[0]["text"] and pred.trajectory.void_turns == 1


def test_a_compiled_program_can_be_saved_loaded_and_re_pointed(tmp_path):
    import json

    def frozen(instructions=None):
        program = CodeAgent("question -> answer", max_steps=2, instructions=instructions)
        program._compiled = True  # what every DSPy teleprompter leaves on its result: a frozen program
        return program

    compiled = frozen("Tuned by an optimizer.")
    robust = SelfConsistency(compiled, n=2)
    assert robust.predictors() == [compiled.step]
    robust.save(tmp_path / "robust.json")
    assert "Tuned by an optimizer." in json.loads((tmp_path / "robust.json").read_text())["program.step"][
        "signature"]["instructions"]

    fresh = SelfConsistency(frozen(), n=2)
    fresh.load(tmp_path / "robust.json")
    assert fresh.program.instructions == compiled.instructions
    lm, engine = scripted_lm([block("final_answer(6)")] * 2)
    fresh.set_lm(lm)
    assert fresh.program.step.lm is lm and fresh.get_lm() is lm
    try:
        assert fresh(question="q").answer == "6"
    finally:
        fresh.program.close()
    assert len(engine.requests) == 2  # both candidates went to the re-pointed LM
    assert engine.requests[0]["messages"][0]["content"].rstrip().endswith(compiled.instructions.split("\n")[-1])


def test_candidates_keep_the_lms_max_tokens():
    """No max_tokens on the wrapper or the program: the LM's own limit holds (it used to fall back to 512 tokens
    per candidate, 8 minutes for a 2-question eval)."""
    import agentdistill

    lm = agentdistill.local_lm("smollm2-135m-instruct", backend="llama.cpp", max_tokens=6, cache=False)
    agent = CodeAgent("question -> answer", max_steps=1)
    agent.set_lm(lm)
    try:
        robust = SelfConsistency(agent, n=2)
        assert robust.max_tokens is None
        robust(question="Write a long essay on the history of the number zero.")
    finally:
        agent.close()
    first = next(h for h in lm.history if h["kwargs"].get("n") == 2)
    assert first["kwargs"]["max_tokens"] == 6 and first["usage"]["completion_tokens"] <= 12
