"""First-thought prefix extraction: the first paragraph of the teacher's chain of thought."""

from agentdistill.optimizers.first_thought import first_paragraph, generate_prefix
from tests.programs.scripted import scripted_lm


def test_first_paragraph_cuts_at_first_blank_line():
    assert first_paragraph("Let x be the price.\nThen 3x = 12.\n\nSo x = 4.") == "Let x be the price.\nThen 3x = 12."
    assert first_paragraph("  one  \n  \t \ntwo") == "one"
    assert first_paragraph("no blank line at all") == "no blank line at all"
    assert first_paragraph("") == "" and first_paragraph(None) == ""
    assert first_paragraph("Reasoning: We add.\n\nDone") == "We add."


def test_first_paragraph_caps_a_runaway_paragraph_at_a_sentence():
    text = "A short one. " * 100
    out = first_paragraph(text, max_chars=60)
    assert len(out) <= 60 and out.endswith(".")


def test_generate_prefix_asks_the_teacher_once_and_stops_at_a_blank_line():
    lm, engine = scripted_lm(["First, compute 2+2 by adding the two numbers.\nIt is small."])
    out = generate_prefix({"question": "What is 2+2?"}, lm=lm)
    assert out["prefix"] == "First, compute 2+2 by adding the two numbers.\nIt is small."
    assert len(engine.requests) == 1
    req = engine.requests[0]
    assert "\n\n" in req["stop"] and req["max_tokens"] == 160
    assert "What is 2+2?" in req["messages"][-1]["content"]
