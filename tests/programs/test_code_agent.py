"""The real CodeAgent loop, driven by a scripted LM, with code running in the real Sandbox."""

import dspy
import pytest
from scripted import scripted_lm

from agentdistill.programs import CodeAgent, Trajectory, trajectory_to_chat
from agentdistill.programs.rendering import render_chat

CAPITALS = {"France": "Paris", "Peru": "Lima"}


def capital_of(country: str) -> str:
    """The capital city of a country."""
    return CAPITALS[country]


LOOKUP = "Thought: I will look the capital up.\n```python\ncity = capital_of('France')\nprint(city)\n```"
FINAL = "Thought: The capital is Paris.\n```python\nfinal_answer(city)\n```"


@pytest.fixture(scope="module")
def agent():
    agent = CodeAgent("question -> answer", tools=[capital_of], max_steps=3)
    yield agent
    agent.close()


def run(agent, replies, **inputs):
    lm, engine = scripted_lm(replies)
    agent.set_lm(lm)
    with dspy.context(trace=[]):
        pred = agent(**inputs)
        trace = list(dspy.settings.trace)
    return pred, engine, trace


def test_tool_call_then_final_answer(agent):
    pred, engine, _ = run(agent, [LOOKUP, FINAL], question="What is the capital of France?")
    traj = pred.trajectory
    assert pred.answer == "Paris"
    assert traj.finished and not traj.out_of_steps and traj.final_answer == "Paris"
    assert len(traj.steps) == 2 and len(engine.requests) == 2
    first = traj.steps[0]
    assert first.code == "city = capital_of('France')\nprint(city)"
    assert "Paris" in first.observation and first.error is None
    assert [c["name"] for c in first.tool_calls] == ["capital_of"]  # the host tool was called through the sandbox
    assert traj.steps[1].is_final and traj.parse_errors == 0
    # the observation of step 1 is the next user turn the model saw; each step starts as "Thought:"
    assert engine.requests[1]["messages"][-2] == {"role": "user", "content": "Observation:\n" + first.observation}
    assert engine.requests[1]["messages"][-1] == {"role": "assistant", "content": "Thought:"}


def test_every_prompt_is_a_byte_identical_prefix_of_the_trajectory_chat(agent):
    pred, engine, _ = run(agent, [LOOKUP, FINAL], question="What is the capital of France?")
    traj = pred.trajectory
    assert traj.messages == trajectory_to_chat(traj) == trajectory_to_chat(Trajectory.from_json(traj.to_json()))
    for request in engine.requests:
        *prompt, seed = request["messages"]  # the conversation so far + the partial turn the model continued
        assert traj.messages[: len(prompt)] == prompt
        assert seed["role"] == "assistant" and traj.messages[len(prompt)]["content"].startswith(seed["content"])
    assert traj.messages[-1] == {"role": "assistant", "content": FINAL}
    assert len(traj.messages) == len(engine.requests[-1]["messages"])


def test_first_thought_prefix_is_sent_and_continued_on_step_one_only(agent):
    prefix = "First, I need the capital of France."
    continuation = " I will call the tool.\n```python\ncity = capital_of('France')\nprint(city)\n```"
    pred, engine, trace = run(agent, [continuation, FINAL], question="Capital of France?",
                              first_thought_prefix=prefix)
    traj = pred.trajectory
    sent = engine.requests[0]["messages"][-1]
    assert sent == {"role": "assistant", "content": "Thought: " + prefix}  # partial turn the model continues
    assert engine.requests[1]["messages"][-1]["content"] == "Thought:"  # step 2: no prefix, the bare seed
    assert traj.steps[0].text.startswith(sent["content"] + " I will call the tool.")
    assert traj.steps[0].thought == prefix + " I will call the tool."
    assert traj.messages[2]["content"].startswith(sent["content"])
    assert (traj.first_thought_prefix, traj.steps[0].prefix, traj.steps[1].prefix) == (prefix, prefix, None)
    assert [t[1]["prefix"] for t in trace] == [prefix, None]
    assert pred.answer == "Paris"


def test_a_prefix_ending_in_a_paragraph_break_is_seeded_with_it(agent):
    """The paper seeds "Thought: " + the first paragraph + "\n\n" (build_prefix_memory.py): the model starts a new
    paragraph instead of finishing the prefix's last sentence."""
    prefix = "I need the capital of France.\n\n"
    continuation = "I will call the tool.\n```python\ncity = capital_of('France')\nprint(city)\n```"
    pred, engine, trace = run(agent, [continuation, FINAL], question="Capital of France?",
                              first_thought_prefix="  " + prefix)  # leading blanks are not part of it
    traj = pred.trajectory
    assert engine.requests[0]["messages"][-1] == {"role": "assistant", "content": "Thought: " + prefix}
    assert traj.steps[0].text.startswith("Thought: " + prefix + "I will call the tool.")
    assert traj.first_thought_prefix == traj.steps[0].prefix == trace[0][1]["prefix"] == prefix
    assert traj.messages == trajectory_to_chat(traj) and pred.answer == "Paris"


def test_parse_error_becomes_an_observation_and_the_run_continues(agent):
    pred, engine, _ = run(agent, ["Thought: The answer is Paris.", LOOKUP, FINAL], question="Capital of France?")
    traj = pred.trajectory
    assert traj.steps[0].parse_error and traj.steps[0].code is None
    assert "no ```python code block" in traj.steps[0].observation
    told = engine.requests[1]["messages"]
    assert told[-3] == {"role": "assistant", "content": "Thought: The answer is Paris."}
    assert told[-2]["content"] == "Observation:\n" + traj.steps[0].observation
    assert traj.parse_errors == 1 and traj.finished and pred.answer == "Paris"


def test_execution_error_is_shown_and_the_state_survives(agent):
    crash = "Thought: try Atlantis.\n```python\nother = capital_of('Atlantis')\n```"
    pred, _, _ = run(agent, [LOOKUP, crash, FINAL], question="Capital of France?")
    step = pred.trajectory.steps[1]
    assert step.error is not None and step.error_kind == "exception" and "Atlantis" in step.observation
    assert pred.answer == "Paris"  # `city` from step 1 is still there


def test_out_of_steps_without_the_final_ask():
    agent = CodeAgent("question -> answer", tools=[capital_of], max_steps=3, final_answer_on_max_steps=False)
    try:
        pred, engine, _ = run(agent, [LOOKUP, LOOKUP, LOOKUP], question="Capital of France?")
    finally:
        agent.close()
    traj = pred.trajectory
    assert traj.out_of_steps and not traj.finished and len(engine.requests) == 3
    assert pred.answer is None and traj.final_answer is None and len(traj.steps) == 3
    assert traj.forced_answer is None and traj.forced_ask is None


def test_out_of_steps_asks_the_model_for_a_final_answer(agent):
    """The paper's agents (smolagents' provide_final_answer) ask once more when the steps run out."""
    question = "Capital of France?"
    pred, engine, trace = run(agent, [LOOKUP, LOOKUP, LOOKUP, "Thought: I found it twice.\nAnswer: Paris"],
                              question=question)
    traj = pred.trajectory
    assert pred.answer == "Paris" and traj.forced_answer == "Paris"
    # the episode itself still ran out of steps: the distillation filter drops it, and the forced answer is apart
    assert traj.out_of_steps and not traj.finished and traj.final_answer is None
    assert len(traj.steps) == 3 and len(trace) == 3  # the ask is not a step of the agent
    assert len(engine.requests) == 4
    ask = engine.requests[3]["messages"]
    assert ask[0] == {"role": "system", "content": (
        "An agent tried to answer a user query but it got stuck and failed to do so. You are tasked with "
        "providing an answer instead. Here is the agent's memory:")}
    # the agent's memory: the task and every step with its observation (the last one included), then the ask
    assert ask[1:-2] == traj.messages[1:]
    assert ask[-2] == {"role": "user", "content": "Observation:\n" + traj.steps[-1].observation}
    assert ask[-1]["role"] == "user" and ask[-1]["content"].startswith(
        "Based on the above, please provide an answer to the following user task:\nQuestion: " + question)
    assert traj.forced_ask["messages"] == ask and traj.forced_ask["source"] == "answer_line"
    assert traj.forced_ask["reply"] == "Thought: I found it twice.\nAnswer: Paris"
    # the SFT chat is the episode's own conversation, without the ask
    assert traj.messages == trajectory_to_chat(traj) and traj.messages[-1]["content"] == traj.steps[-1].text
    # the ask's tokens and time count in the episode's totals
    per_step = sum(s.usage["scripted/agent"]["completion_tokens"] for s in traj.steps)
    assert traj.usage["scripted/agent"]["completion_tokens"] > per_step
    back = Trajectory.from_json(traj.to_json())
    assert back == traj and back.forced_answer == "Paris"


def test_the_final_ask_runs_a_final_answer_call_in_the_episode(agent):
    # a code agent asked for an answer often replies with code: it runs in the episode, whose variables it uses
    pred, _, _ = run(agent, [LOOKUP, LOOKUP, LOOKUP, FINAL], question="Capital of France?")
    traj = pred.trajectory
    assert pred.answer == "Paris" and traj.forced_answer == "Paris" and traj.forced_ask["source"] == "final_answer"
    assert traj.out_of_steps and traj.final_answer is None


def test_the_final_ask_takes_a_plain_reply_as_the_answer(agent):
    pred, _, _ = run(agent, [LOOKUP, LOOKUP, LOOKUP, "  Paris  "], question="Capital of France?")
    assert pred.answer == "Paris" and pred.trajectory.forced_ask["source"] == "reply"


def test_the_final_ask_goes_through_self_consistency_once():
    from agentdistill.programs import SelfConsistency

    agent = CodeAgent("question -> answer", tools=[capital_of], max_steps=1)
    try:
        lm, engine = scripted_lm([LOOKUP, LOOKUP, "Answer: Paris"])
        agent.set_lm(lm)
        pred = SelfConsistency(agent, n=2)(question="Capital of France?")
    finally:
        agent.close()
    assert pred.answer == "Paris" and pred.trajectory.out_of_steps and len(engine.requests) == 3


def test_each_step_is_one_traced_predictor_call_with_the_conversation_so_far(agent):
    pred, engine, trace = run(agent, [LOOKUP, FINAL], question="Capital of France?")
    steps = pred.trajectory.steps
    assert [t[0] for t in trace] == [agent.step, agent.step]
    assert trace[0][1]["history"] == []
    assert trace[1][1]["history"] == [{"text": steps[0].text, "observation": steps[0].observation}]
    for k, (_, inputs, out) in enumerate(trace):
        # a step's trace inputs re-render to exactly the prompt the model got at that step
        assert agent.adapter.format(agent.step.signature, [], inputs) == engine.requests[k]["messages"]
        assert (out.thought, out.code) == (steps[k].thought, steps[k].code)


def test_usage_timings_and_example_id(agent):
    pred, _, _ = run(agent, [LOOKUP, FINAL], question="Capital of France?", example_id="hotpot-7")
    traj = pred.trajectory
    assert traj.example_id == "hotpot-7"
    per_step = [s.usage["scripted/agent"]["completion_tokens"] for s in traj.steps]
    assert all(n > 0 for n in per_step) and traj.usage["scripted/agent"]["completion_tokens"] == sum(per_step)
    assert traj.timings["total_s"] >= traj.timings["lm_s"] > 0
    again, _, _ = run(agent, [LOOKUP, FINAL], question="Capital of France?")
    assert again.trajectory.example_id == run(agent, [LOOKUP, FINAL], question="Capital of France?")[0] \
        .trajectory.example_id  # default id: a stable hash of the inputs


def test_deepcopy_copies_the_predictor_and_shares_tools_and_sandbox(agent):
    copy = agent.deepcopy()
    assert copy.step is not agent.step and copy.tools[0] is agent.tools[0]
    assert copy.sandbox is agent.sandbox
    lm, _ = scripted_lm([])
    copy.set_lm(lm)
    assert agent.step.lm is not lm


def test_bad_inputs_name_the_fix():
    agent = CodeAgent("question -> answer")
    with pytest.raises(ValueError, match="missing \\['question'\\], unknown \\['query'\\]"):
        agent(query="q")
    with pytest.raises(ValueError, match="max_steps"):
        CodeAgent("question -> answer", max_steps=0)


def test_system_prompt_lists_the_tools(agent):
    _, engine, _ = run(agent, [FINAL.replace("city", "'Paris'")], question="Capital of France?")
    system = engine.requests[0]["messages"][0]["content"]
    assert 'def capital_of(country: str) -> str:\n    """The capital city of a country."""' in system
    assert engine.requests[0]["messages"] == render_chat(agent.instructions, agent.tool_specs,
                                                         {"question": "Capital of France?"}, [], seed=True)


def test_save_and_load_keep_the_prompt(tmp_path):
    agent = CodeAgent("question -> answer", tools=[capital_of], instructions="Name capitals.")
    agent.step.signature = agent.step.signature.with_instructions("Name capital cities.")  # as an optimizer would
    assert agent.instructions == "Name capital cities."
    agent.save(tmp_path / "agent.json")
    fresh = CodeAgent("question -> answer", tools=[capital_of])
    fresh.load(tmp_path / "agent.json")
    assert fresh.instructions == "Name capital cities."
    agent.save(tmp_path / "program", save_program=True)  # whole-program pickle: no live sandbox inside
    loaded = dspy.load(str(tmp_path / "program"), allow_pickle=True)
    assert loaded.instructions == "Name capital cities." and loaded._sandbox is None
    lm, _ = scripted_lm([FINAL.replace("city", "capital_of('Peru')")])
    loaded.set_lm(lm)
    try:
        assert loaded(question="Capital of Peru?").answer == "Lima"
    finally:
        loaded.close()


def test_silent_code_gets_a_hint_to_print(agent):
    silent = "Thought: store it.\n```python\ncity = capital_of('France')\n```"
    pred, _, _ = run(agent, [silent, FINAL], question="Capital of France?")
    assert pred.trajectory.steps[0].observation == "(no output: use print() to see values)"


def test_a_failing_final_ask_keeps_the_episode(caplog):
    # the ask sends the whole history again: it can overflow a context window where every step fit. The episode
    # ran to its end: it comes back (answer None, as without the ask) with the reason recorded, not as a crash
    agent = CodeAgent("question -> answer", max_steps=1)
    lm, _ = scripted_lm(["Thought: look.\n```python\nprint(1)\n```"])  # no reply left for the ask: it raises
    agent.set_lm(lm)
    try:
        pred = agent(question="What is 1?")
    finally:
        agent.close()
    assert pred.answer is None and pred.trajectory.out_of_steps
    assert "no reply left" in pred.trajectory.forced_ask["error"]
    assert any("final-answer ask failed" in r.getMessage() for r in caplog.records)


# --- await agent.acall(...): the same loop, LM calls awaited, code run off the event loop -----------------------
def arun(agent, replies, **inputs):
    import asyncio

    lm, engine = scripted_lm(replies)
    agent.set_lm(lm)

    async def go():
        with dspy.context(trace=[]):
            pred = await agent.acall(**inputs)
            return pred, list(dspy.settings.trace)

    pred, trace = asyncio.run(go())
    return pred, engine, trace


def _comparable(traj):
    d = traj.to_dict()
    d.pop("timings")
    for step in d["steps"]:
        step.pop("lm_seconds"), step.pop("exec_seconds")
    if d.get("forced_ask"):
        d["forced_ask"].pop("lm_seconds")
    return d


@pytest.mark.parametrize("replies", [[LOOKUP, FINAL], [LOOKUP, LOOKUP, LOOKUP, FINAL],
                                     [LOOKUP, LOOKUP, LOOKUP, "Thought: found it.\nAnswer: Paris"]],
                         ids=["final_answer", "out_of_steps_code_ask", "out_of_steps_answer_line"])
def test_acall_runs_the_same_episode_as_call(agent, replies):
    sync_pred, sync_engine, sync_trace = run(agent, list(replies), question="Capital of France?", example_id="q1")
    pred, engine, trace = arun(agent, list(replies), question="Capital of France?", example_id="q1")
    assert pred.answer == sync_pred.answer == "Paris"
    assert engine.requests == sync_engine.requests  # byte-identical prompts, stops and settings
    assert _comparable(pred.trajectory) == _comparable(sync_pred.trajectory)
    assert [t[1] for t in trace] == [t[1] for t in sync_trace] and len(trace) == min(3, len(replies))
    assert pred.trajectory.steps[0].tool_calls[0]["name"] == "capital_of"  # the host tool ran through the sandbox


def test_many_agents_share_one_event_loop():
    import asyncio

    def reply(messages):  # each episode's own question decides its replies, whatever order the calls come in
        country = "Peru" if "Peru" in messages[1]["content"] else "France"
        if len(messages) == 3:  # system, question, the seeded "Thought:"
            return f" I look it up.\n```python\ncity = capital_of('{country}')\nprint(city)\n```"
        return " Done.\n```python\nfinal_answer(city)\n```"

    agent = CodeAgent("question -> answer", tools=[capital_of], max_steps=3)
    lm, engine = scripted_lm([reply] * 8)
    agent.set_lm(lm)

    async def both():
        return await asyncio.gather(*(agent.acall(question=f"Capital of {c}?") for c in ("France", "Peru") * 2))

    try:
        preds = asyncio.run(both())
    finally:
        agent.close()
    assert [p.answer for p in preds] == ["Paris", "Lima", "Paris", "Lima"] and len(engine.requests) == 8
    assert all(p.trajectory.finished and len(p.trajectory.steps) == 2 for p in preds)


def test_a_failing_final_ask_keeps_the_episode_under_acall(caplog):
    agent = CodeAgent("question -> answer", tools=[capital_of], max_steps=1)
    try:
        pred, _, _ = arun(agent, [LOOKUP], question="Capital of France?")  # no reply left for the ask
    finally:
        agent.close()
    assert pred.answer is None and pred.trajectory.out_of_steps and len(pred.trajectory.steps) == 1
    assert "no reply left" in pred.trajectory.forced_ask["error"]
