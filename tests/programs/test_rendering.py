"""The one renderer: system prompt with tools, task, alternating steps and observations, prefix, CoT chat."""

import dspy
import pytest

from agentdistill.programs import rendering
from agentdistill.programs.rendering import render_chat, render_step, tool_specs


def search(query: str, k: int = 3) -> list[str]:
    """Search the Wikipedia passages.

    Returns the k best passages."""
    return []


def specs():
    return tool_specs([search], dspy.Signature("question -> answer").output_fields)


def test_system_prompt_shows_tools_as_python_stubs_with_docstrings():
    system = render_chat("Answer the question.", specs(), {"question": "q"}, [])[0]
    assert system["role"] == "system"
    text = system["content"]
    assert "Answer the question." in text
    assert 'def search(query: str, k: int = 3) -> list[str]:\n    """Search the Wikipedia passages.\n\n' in text
    assert "    Returns the k best passages." in text  # docstring indented under the stub
    assert "def final_answer(answer) -> None:" in text
    assert text.index("def search") < text.index("def final_answer")


def test_conversation_alternates_steps_and_observations():
    history = [{"text": render_step("look it up", "print(search('x'))"), "observation": "['p1']"},
               {"text": "Thought: oops", "observation": "Error: no code"}]
    messages = render_chat("I.", specs(), {"question": "Who?", "context_hint": "films"}, history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == "Question: Who?\n\nContext hint: films"
    assert messages[2]["content"] == "Thought: look it up\n```python\nprint(search('x'))\n```"
    assert messages[3]["content"] == "Observation:\n['p1']"


def test_empty_observation_tells_the_model_to_print():
    messages = render_chat("I.", specs(), {"question": "q"}, [{"text": "t", "observation": "  "}])
    assert messages[-1]["content"] == "Observation:\n" + rendering.EMPTY_OBSERVATION


def test_prefix_is_a_trailing_partial_assistant_turn():
    messages = render_chat("I.", specs(), {"question": "q"}, [], prefix="  First, I need the year. ")
    assert messages[-1] == {"role": "assistant", "content": "Thought: First, I need the year."}
    assert render_chat("I.", specs(), {"question": "q"}, [], prefix="   ")[-1]["role"] == "user"


def test_tool_spec_of_dspy_tool_and_bad_tools():
    assert rendering.tool_spec(dspy.Tool(search))["signature"] == "(query: str, k: int = 3) -> list[str]"
    with pytest.raises(ValueError, match="usable Python name"):
        rendering.tool_spec(lambda q: q)
    with pytest.raises(ValueError, match="unique"):
        tool_specs([search, search], {"answer": None})


def test_tools_are_described_by_dspy_tool_and_rendered_as_our_stub():
    tool = rendering.describe(search)
    assert isinstance(tool, dspy.Tool) and tool.args == {"query": {"type": "string"},
                                                         "k": {"type": "integer", "default": 3}}
    assert rendering.tool_spec(search) == {"name": "search", "signature": "(query: str, k: int = 3) -> list[str]",
                                           "doc": "Search the Wikipedia passages.\n\nReturns the k best passages."}
    # a dspy.Tool's own name and description are the ones shown
    own = rendering.tool_spec(dspy.Tool(search, name="lookup", desc="Look it up."))
    assert own == {"name": "lookup", "signature": "(query: str, k: int = 3) -> list[str]", "doc": "Look it up."}

    def undocumented(x: int) -> int:
        return x

    class Retriever:
        name = "retrieve"

        def __call__(self, query: str) -> str:
            """Find passages for the query."""
            return query

    assert rendering.tool_spec(undocumented)["doc"] == "Calls undocumented."  # not the doc of Python's function type
    assert rendering.tool_spec(Retriever()) == {"name": "retrieve", "signature": "(query: str) -> str",
                                                "doc": "Find passages for the query."}


def test_a_tool_dspy_cannot_describe_names_the_fix():
    namespace = {}
    exec('from __future__ import annotations\ndef lookup(name: Missing) -> str:\n    """Look up."""\n', namespace)
    with pytest.raises(TypeError, match="tool 'lookup': dspy.Tool cannot read its signature .*NameError"):
        rendering.tool_spec(namespace["lookup"])
    with pytest.raises(ValueError, match="give the dspy.Tool a name="):
        rendering.tool_spec(dspy.Tool(lambda q: q))


def test_final_answer_with_several_outputs_takes_a_dict():
    spec = tool_specs([], dspy.Signature("question -> answer, source").output_fields)[-1]
    assert spec["signature"] == "(answer: dict) -> None" and "'answer', 'source'" in spec["doc"]


def test_cot_chat():
    chat = rendering.cot_chat("Solve it.", {"question": "2+2?"}, "Two plus two.", "4")
    assert [m["role"] for m in chat] == ["system", "user", "assistant"]
    assert chat[0]["content"].startswith("Solve it.\n")
    assert chat[2]["content"] == "Two plus two.\n\nAnswer: 4"
    assert rendering.cot_chat("Solve it.", {"question": "2+2?"}) == chat[:2]


def test_string_annotations_are_shown_as_source():
    namespace = {}
    exec("from __future__ import annotations\ndef lookup(name: str, k: int = 2) -> list[str]:\n"
         "    '''Look up a name.'''\n", namespace)
    assert rendering.tool_spec(namespace["lookup"])["signature"] == "(name: str, k: int = 2) -> list[str]"


def test_a_callable_retriever_object_is_a_tool_named_search():
    from agentdistill.programs import factual_agent
    from agentdistill.tools.retrieval.colbert_search import ColBERTSearch

    agent = factual_agent(ColBERTSearch(url="http://127.0.0.1:9"))  # no index needed to describe the tool
    spec = agent.tool_specs[0]
    assert (spec["name"], spec["signature"]) == ("search", "(query: str) -> str")
    assert "Wikipedia" in spec["doc"]


def test_factual_agent_calls_its_tool_search():
    from agentdistill.programs import factual_agent, math_agent

    def retrieve(query: str) -> str:
        """Find passages."""
        return "p: " + query

    agent = factual_agent(retrieve)
    assert agent.tool_specs[0] == {"name": "search", "signature": "(query: str) -> str", "doc": "Find passages."}
    assert agent.tools[0]("x") == "p: x"
    assert 'print(search("Ed Wood film director"))' in agent.instructions  # the worked example uses the tool
    assert "from sympy import divisors" in math_agent().instructions


def test_the_out_of_steps_ask_is_the_papers_prompt_around_the_agents_memory():
    from agentdistill.programs.rendering import final_answer_chat, render_observation, render_task

    task = {"question": "Capital of France?"}
    history = [{"text": "Thought: look.\n\n```python\nprint(1)\n```", "observation": "1"}]
    chat = final_answer_chat(task, history)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "user"]
    assert chat[0]["content"].startswith("An agent tried to answer a user query but it got stuck")
    assert chat[1:4] == [{"role": "user", "content": render_task(task)}, {"role": "assistant", "content":
                         history[0]["text"]}, {"role": "user", "content": render_observation("1")}]
    assert chat[-1]["content"] == ("Based on the above, please provide an answer to the following user task:\n"
                                   "Question: Capital of France?\n"
                                   'End your reply with a last line of the form "Answer: <the final answer>".')


def test_a_prefix_keeps_its_paragraph_break_and_loses_blanks():
    from agentdistill.programs.rendering import clean_prefix, render_prefix

    assert render_prefix("  First para.\n\n") == "Thought: First para.\n\n"
    assert render_prefix("First, ") == "Thought: First,"
    assert clean_prefix(" \n ") is None and render_prefix(None) == "Thought:"
