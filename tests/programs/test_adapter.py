"""AgentAdapter: stop strings, continuation settings only for the seeded step, demos refused loudly."""

import logging

import dspy
from scripted import scripted_lm

from agentdistill.programs import AgentAdapter
from agentdistill.programs.rendering import STEP_STOP, tool_specs
from agentdistill.signatures import AgentStep

INPUTS = {"task": {"question": "q"}, "tools": tool_specs([], {"answer": None}), "history": [], "prefix": None}


def test_stop_strings_and_continuation_kwargs_only_when_a_partial_turn_is_sent():
    extra = {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}
    unseeded = AgentAdapter(seed_thought=False, continuation_kwargs=extra)
    assert unseeded.lm_kwargs(INPUTS, {"max_tokens": 64}) == {"stop": list(STEP_STOP), "max_tokens": 64}
    assert unseeded.lm_kwargs({**INPUTS, "prefix": "First,"}, {})["extra_body"] == extra["extra_body"]
    assert AgentAdapter(continuation_kwargs=extra).lm_kwargs(INPUTS, {})["extra_body"] == extra["extra_body"]


def test_every_step_is_seeded_with_thought_and_a_new_turn_is_accepted():
    adapter = AgentAdapter()
    assert adapter.format(AgentStep, [], INPUTS)[-1] == {"role": "assistant", "content": "Thought:"}
    assert adapter.continued(INPUTS, " add.") == "Thought: add."
    assert adapter.continued(INPUTS, "Thought: add.") == "Thought: add."  # a server that ignored the partial turn
    assert AgentAdapter(seed_thought=False).format(AgentStep, [], INPUTS)[-1]["role"] == "user"


def test_predict_with_the_adapter_sends_stops_and_parses_the_continuation():
    lm, engine = scripted_lm([" add.\n```python\nprint(1 + 1)\n```"])
    with dspy.context(lm=lm, adapter=AgentAdapter()):
        pred = dspy.Predict(AgentStep)(**{**INPUTS, "prefix": "I will"})
    assert engine.requests[0]["stop"] == STEP_STOP
    assert (pred.thought, pred.code) == ("I will add.", "print(1 + 1)")
    assert pred.text == "Thought: I will add.\n```python\nprint(1 + 1)\n```"


def test_demos_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        messages = AgentAdapter().format(AgentStep, [{"thought": "x", "code": "y"}], INPUTS)
    assert "ignores 1 demo" in caplog.text
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]


def test_continuation_settings_come_from_the_lm_unless_the_agent_sets_them():
    from agentdistill.lm import server_lm

    vllm = {"continue_final_message": True, "add_generation_prompt": False}
    url = "http://127.0.0.1:9/v1"  # never called: lm_kwargs only builds the call
    lm = server_lm("m", url)
    seeded = AgentAdapter()
    assert seeded.lm_kwargs(INPUTS, {}, lm)["extra_body"] == vllm  # the LM says how its server continues
    assert "extra_body" not in AgentAdapter(seed_thought=False).lm_kwargs(INPUTS, {}, lm)  # no partial turn sent
    assert "extra_body" not in seeded.lm_kwargs(INPUTS, {}, server_lm("m", url, server="llama.cpp"))  # prefill
    assert "extra_body" not in AgentAdapter(continuation_kwargs={}).lm_kwargs(INPUTS, {}, lm)  # the agent wins
    # a call's own extra_body and the LM's are kept next to the switches, not replaced by them
    own = server_lm("m", url, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    body = seeded.lm_kwargs(INPUTS, {"extra_body": {"top_k": 20}}, own)["extra_body"]
    assert body == {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20, **vllm}


def test_a_server_lm_without_settings_is_warned_about_once(caplog):
    from agentdistill.lm import continuation_kwargs

    lm = dspy.LM("openai/unmarked-test-model", api_base="http://127.0.0.1:9/v1", api_key="local")
    with caplog.at_level(logging.WARNING):
        assert AgentAdapter().lm_kwargs(INPUTS, {}, lm) == {"stop": list(STEP_STOP)}
        continuation_kwargs(lm)
    assert caplog.text.count("has no continuation settings") == 1 and "server_lm" in caplog.text
