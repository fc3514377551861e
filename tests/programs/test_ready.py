"""The preset programs (programs.ready): the four by name, each family's own prompt, a clear error for others."""

import pytest

from agentdistill.programs import ChainOfThoughtSolver, CodeAgent, preset
from agentdistill.programs.ready import FACTUAL_COT_INSTRUCTIONS, MATH_COT_INSTRUCTIONS


def search(query: str) -> str:
    """Passages about the query."""
    return "[1] nothing"


def test_presets_by_kind_and_family():
    cot = preset("cot", "math", max_tokens=64)
    assert isinstance(cot, ChainOfThoughtSolver) and cot.instructions == MATH_COT_INSTRUCTIONS and cot.max_tokens == 64
    assert preset("cot", "factual").instructions == FACTUAL_COT_INSTRUCTIONS
    agent = preset("agent", "factual", search, max_steps=3)
    assert isinstance(agent, CodeAgent) and agent.max_steps == 3 and [t["name"] for t in agent.tool_specs] == ["search", "final_answer"]
    math = preset("agent", "math")
    assert [t["name"] for t in math.tool_specs] == ["final_answer"] and "sympy" in math.instructions
    for a in (agent, math):
        a.close()


def test_an_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"kind='react', family='math': kinds \('agent', 'cot'\)"):
        preset("react", "math")
