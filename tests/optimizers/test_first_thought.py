"""First-thought prefix extraction: the first paragraph of the teacher's chain of thought."""

import dspy
from dspy.utils import DummyLM

from agentdistill.optimizers.first_thought import first_paragraph, generate_prefix


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


def test_generate_prefix_asks_the_teacher_lm():
    lm = DummyLM([{"reasoning": "First, compute 2+2.\n\nThen answer.", "answer": "4",
                   "first_thought": "First, compute 2+2.\n\nThen answer."}])
    out = generate_prefix("What is 2+2?", lm=lm)
    assert out["prefix"] == "First, compute 2+2."
    assert "Then answer." in out["reasoning"]
    assert len(lm.history) == 1
