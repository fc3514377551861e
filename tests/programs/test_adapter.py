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
