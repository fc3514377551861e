"""The signatures are plain DSPy signatures: right fields, usable with stock dspy.Predict and adapters."""

import dspy

from agentdistill.signatures import AgentStep, CoTAnswer


def test_agent_step_fields():
    assert list(AgentStep.input_fields) == ["task", "tools", "history", "prefix"]
    assert list(AgentStep.output_fields) == ["thought", "code"]
    # the prefix is optional (only step 1 is seeded): DSPy fills the default, so steps 2.. need not pass it
    assert AgentStep.input_fields["prefix"].default is None


def test_with_instructions_keeps_fields():
    custom = AgentStep.with_instructions("Solve the math problem.")
    assert custom.instructions == "Solve the math problem."
    assert list(custom.fields) == list(AgentStep.fields)


def test_cot_answer_fields():
    assert list(CoTAnswer.input_fields) == ["task"]
    assert list(CoTAnswer.output_fields) == ["reasoning", "answer"]
