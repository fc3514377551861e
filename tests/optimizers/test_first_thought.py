"""First-thought prefixes as the paper's build_prefix_memory.py makes them: the first paragraph of the teacher's plain
CoT answer (split on a blank line), continued after its paragraph break, from a CoT prompt without the agent's
instructions or example."""

import pytest

from agentdistill.optimizers.first_thought import first_paragraph, prefix_solver, seed_prefix
from agentdistill.programs import CodeAgent, cot_chat
from agentdistill.programs.cot import DEFAULT_COT_INSTRUCTIONS
from agentdistill.programs.ready import MATH_INSTRUCTIONS, math_agent
from tests.programs.scripted import scripted_lm


def test_first_paragraph_is_the_text_before_the_first_blank_line():
    assert first_paragraph("Let x be the price.\nThen 3x = 12.\n\nSo x = 4.") == "Let x be the price.\nThen 3x = 12."
    assert first_paragraph("\n\n  one  \n\ntwo") == "one"
    assert first_paragraph("no blank line at all") == "no blank line at all"
    assert first_paragraph("") == "" and first_paragraph(None) == ""
    long = "A short one. " * 100  # the paper keeps a long paragraph whole: no cut in the middle of a sentence
    assert first_paragraph(long + "\n\nnext") == long.strip()


def test_the_seed_ends_with_the_paragraph_break():
    assert seed_prefix("First, add.\n\nThen print.\n\nAnswer: 3") == "First, add.\n\n"
    assert seed_prefix("") is None and seed_prefix(None) is None


def test_the_prefix_cot_is_the_plain_cot_prompt_not_the_agents():
    agent = math_agent(max_steps=3, max_tokens=300)
    solver = prefix_solver(agent)
    assert solver.instructions == DEFAULT_COT_INSTRUCTIONS and solver.max_tokens == 300
    assert prefix_solver(agent, instructions="Reason, then answer.").instructions == "Reason, then answer."
    lm, engine = scripted_lm(["Divide 12 by 3.\n\nIt is 4.\n\nAnswer: 4"])
    solver.set_lm(lm)
    pred = solver(question="What is 12 / 3?")
    sent = engine.requests[0]
    assert sent["messages"] == cot_chat(DEFAULT_COT_INSTRUCTIONS, {"question": "What is 12 / 3?"})
    text = "".join(m["content"] for m in sent["messages"])
    assert MATH_INSTRUCTIONS not in text and "Example:" not in text and "divisors" not in text
    assert sent["max_tokens"] == 300 and "\n\n" not in sent["stop"]  # the whole answer: CoTDistill trains on it
    assert seed_prefix(pred.reasoning) == "Divide 12 by 3.\n\n"


def test_a_signature_with_several_outputs_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="first_thought_prefix=False"):
        prefix_solver(CodeAgent("question -> answer, source"))
