"""Ready-made programs for the paper's two task families: the agents and the CoT baselines (the presets the CLI's
configs name with `[task] family`).

    agent = math_agent()                      # math word problems / competition math: Python only
    agent = factual_agent(search)             # multi-hop factual QA: a retrieval tool (e.g. ColBERTSearch)
    cot = math_cot()                          # the CoT baseline of each family: ChainOfThoughtSolver
    program = preset("agent", "factual", search, max_steps=5, max_tokens=512)   # any of the four by name
"""

import inspect
from typing import Any

from agentdistill.programs.code_agent import CodeAgent
from agentdistill.programs.cot import ChainOfThoughtSolver
from agentdistill.programs.rendering import tool_spec

FAMILIES = ("math", "factual")
KINDS = ("agent", "cot")

MATH_INSTRUCTIONS = (
    "Solve the math problem. Use Python to compute exact results: sympy, numpy, math and fractions are available. "
    "Give the final answer as a number or a simplified expression (e.g. 3/4, 2*sqrt(2)), without units."
)

FACTUAL_INSTRUCTIONS = (
    "Answer the question using the search tool: search for each fact you need, one hop at a time, and read the "
    "passages you print. Give the final answer as a short phrase (a name, date, number or yes/no), not a sentence."
)

MATH_COT_INSTRUCTIONS = ("Solve the math problem step by step. Give the final answer as a number or a simplified "
                         "expression (e.g. 3/4, 2*sqrt(2)), without units.")
FACTUAL_COT_INSTRUCTIONS = ("Answer the question step by step from what you know. Give the final answer as a short "
                            "phrase (a name, date, number or yes/no), not a sentence.")

MATH_EXAMPLE = """Question: What is the sum of all positive divisors of 36?
Thought: I will list the divisors of 36 with sympy and add them.
```python
from sympy import divisors
d = divisors(36)
print(d, sum(d))
```
Observation:
[1, 2, 3, 4, 6, 9, 12, 18, 36] 91
Thought: The divisors add up to 91.
```python
final_answer(91)
```"""

FACTUAL_EXAMPLE = """Question: In which country was the director of the film Ed Wood born?
Thought: First I need the director of the film Ed Wood.
```python
print(search("Ed Wood film director"))
```
Observation:
[1] Ed Wood (film): Ed Wood is a 1994 American biographical film directed by Tim Burton.
Thought: The director is Tim Burton. Now I need where Tim Burton was born.
```python
print(search("Tim Burton born"))
```
Observation:
[1] Tim Burton: Timothy Walter Burton (born August 25, 1958 in Burbank, California) is an American filmmaker.
Thought: Tim Burton was born in Burbank, California, in the United States.
```python
final_answer("United States")
```"""


def math_agent(max_steps: int = 5, **kwargs: Any) -> CodeAgent:
    """A CodeAgent for math ("question -> answer"), code only, no tools."""
    kwargs.setdefault("example", MATH_EXAMPLE)
    return CodeAgent("question -> answer", tools=[], max_steps=max_steps, instructions=MATH_INSTRUCTIONS, **kwargs)


def factual_agent(search, max_steps: int = 5, **kwargs: Any) -> CodeAgent:
    """A CodeAgent for factual multi-hop QA ("question -> answer") with one retrieval tool named `search`.

    search: a typed function with a docstring, or a retriever object (e.g. agentdistill.tools.ColBERTSearch)
    whose call signature and docstring are shown to the model.
    """
    if not callable(search):
        raise TypeError(f"factual_agent(search): search must be callable (query -> passages), got {type(search)}")
    search = _named_search(search)
    kwargs.setdefault("example", FACTUAL_EXAMPLE)
    return CodeAgent("question -> answer", tools=[search], max_steps=max_steps, instructions=FACTUAL_INSTRUCTIONS,
                     **kwargs)


def math_cot(max_tokens: int | None = None) -> ChainOfThoughtSolver:
    """The CoT baseline for math ("question -> answer")."""
    return ChainOfThoughtSolver("question -> answer", instructions=MATH_COT_INSTRUCTIONS, max_tokens=max_tokens)


def factual_cot(max_tokens: int | None = None) -> ChainOfThoughtSolver:
    """The CoT baseline for factual QA, from what the model knows (no retrieval)."""
    return ChainOfThoughtSolver("question -> answer", instructions=FACTUAL_COT_INSTRUCTIONS, max_tokens=max_tokens)


def preset(kind: str, family: str, search=None, *, max_steps: int = 5, max_tokens: int | None = None):
    """A fresh program by name: kind "agent" or "cot", family "math" or "factual" (a factual agent needs `search`)."""
    if kind not in KINDS or family not in FAMILIES:
        raise ValueError(f"no preset program for kind={kind!r}, family={family!r}: kinds {KINDS}, families {FAMILIES}")
    if kind == "cot":
        return (factual_cot if family == "factual" else math_cot)(max_tokens=max_tokens)
    if family == "factual":
        return factual_agent(search, max_steps=max_steps, max_tokens=max_tokens)
    return math_agent(max_steps=max_steps, max_tokens=max_tokens)


def _named_search(tool):
    """The tool under the name `search` (the instructions and the example call it so), signature and doc kept."""
    spec = tool_spec(tool)
    if spec["name"] == "search":
        return tool

    def search(*args, **kwargs):
        return tool(*args, **kwargs)

    search.__signature__ = inspect.signature(getattr(tool, "func", tool))
    search.__doc__ = spec["doc"]
    return search
