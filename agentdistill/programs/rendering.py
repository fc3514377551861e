"""The ONE renderer of the agent's conversation: used at inference (by the adapters) and for SFT data.

    from agentdistill.programs.rendering import render_chat, trajectory_to_chat, cot_chat
    messages = render_chat(instructions, tools, {"question": "What is 2+2?"}, history=[])   # the prompt of step 1
    chat = trajectory_to_chat(trajectory)   # the whole episode, == trajectory.messages, byte for byte

The conversation (jinja2 templates in agentdistill/templates/):
    system     the step format, the tools as Python stubs with docstrings (final_answer last), the task's
               instructions (with a worked example for the ready-made agents)
    user       the task: "Question: ..."
    assistant  "Thought: ...\n```python\n...\n```"           <- one step = one assistant turn
    user       "Observation:\n<printed output or error>"      <- observations are user turns
    ...        (the last assistant turn of an episode has no observation after it)
Out of steps, one more call asks for the answer (`final_answer_chat`); it is not part of the episode's chat.
At inference each step's prompt also ends with a partial assistant turn "Thought:" (step 1 with a first-thought
prefix: "Thought: <prefix>") that the model continues; the recorded turn starts with exactly those bytes.

Why this format (the student is a ~100M-500M chat model): a plain "Thought:" line and a markdown ```python fence
are what these models already emit from pre-training and code instruction tuning, so the student only has to learn
*when* to search/compute, not a new syntax (DSPy's `[[ ## field ## ]]` markers cost tokens and are unfamiliar to
small models). One step per assistant turn with the observation as the next user turn keeps every turn short and
lets SFT put the loss on exactly the tokens the model generates at inference. Seeding "Thought:" keeps untuned
models from starting a step any other way (echoing "Observation:", restating the prompt). Only the first code
block of a reply runs, and the recorded turn is re-rendered from the parsed thought and code, so the conversation
(and the SFT data) is always well-formed.
"""

import functools
import inspect
from typing import Any

import dspy
import jinja2

# Where generation stops: after the step's code block a model sometimes goes on to invent the observation or the
# next step. Only the first code block of a reply is used either way; these save the tokens.
STEP_STOP = ("\nObservation:", "\nThought:")
EMPTY_OBSERVATION = "(no output: use print() to see values)"


def _field_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("agentdistill", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,  # a template file's final newline is not part of the message
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["field_label"] = _field_label
    return env


def _render(template: str, **values) -> str:
    return _env().get_template(template).render(**values)


# --- tools -------------------------------------------------------------------------------------------------------
def describe(tool: Any) -> dspy.Tool:
    """`tool` as DSPy describes it: a `dspy.Tool` (name, description, args read from the function) for a plain
    typed function or a callable object; a `dspy.Tool` as it is. A tool must have a Python name (a `name` or
    `__name__` attribute): the model calls it by that name in its code."""
    if not isinstance(tool, dspy.Tool):
        name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"tool {tool!r} has no usable Python name; give it a `name` attribute or wrap it in a "
                             "def with a name")
        if not callable(tool):
            raise TypeError(f"tool {name!r} is not callable")
        try:
            tool = dspy.Tool(tool, name=name)
        except (NameError, TypeError, ValueError) as e:  # dspy.Tool reads the signature and its type hints
            raise TypeError(f"tool {name!r}: dspy.Tool cannot read its signature ({type(e).__name__}: {e}); give it "
                            "a signature of importable types, or wrap it in a typed def") from None
    if not isinstance(tool.name, str) or not tool.name.isidentifier():
        raise ValueError(f"tool {tool.name!r} has no usable Python name; give the dspy.Tool a name=")
    return tool


def tool_spec(tool: Any) -> dict[str, str]:
    """{'name', 'signature', 'doc'} of a tool: `describe`d by dspy.Tool, shown to the model as a Python stub (the
    function's signature as written, its docstring; the system prompt's template renders the stub)."""
    described = describe(tool)
    doc = inspect.cleandoc(str(described.desc or "")).strip()  # dspy.Tool keeps the docstring's indentation
    return {"name": described.name, "signature": _signature(described.func), "doc": doc or f"Calls {described.name}."}


class _Source(str):
    """An annotation kept as source text (`from __future__ import annotations`): shown without quotes."""

    def __repr__(self):
        return str(self)


def _signature(func) -> str:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return "(*args, **kwargs)"
    unquote = lambda a: _Source(a) if isinstance(a, str) else a  # noqa: E731
    params = [p.replace(annotation=unquote(p.annotation)) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=unquote(sig.return_annotation)))


def final_answer_spec(output_fields: dict[str, Any]) -> dict[str, str]:
    """The stub of final_answer for a signature's output fields (one field: its value; several: a dict)."""
    names = list(output_fields)
    if len(names) == 1:
        field = output_fields[names[0]]
        desc = (field.json_schema_extra or {}).get("desc", "") if hasattr(field, "json_schema_extra") else ""
        what = f"the {names[0]}" + (f" ({desc})" if desc and not desc.startswith("${") else "")
        return {"name": "final_answer", "signature": f"({names[0]}) -> None",
                "doc": f"Ends the task with {what}."}
    keys = ", ".join(repr(n) for n in names)
    return {"name": "final_answer", "signature": "(answer: dict) -> None",
            "doc": f"Ends the task. answer: a dict with the keys {keys}."}


def tool_specs(tools: list[Any], output_fields: dict[str, Any]) -> list[dict[str, str]]:
    specs = [tool_spec(t) for t in tools]
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names) or "final_answer" in names:
        raise ValueError(f"tool names must be unique and not 'final_answer'; got {names}")
    return specs + [final_answer_spec(output_fields)]


# --- the agent's conversation ------------------------------------------------------------------------------------
def render_system(instructions: str, tools: list[dict]) -> str:
    return _render("agent_system.jinja", instructions=instructions.strip(), tools=tools)


def render_task(task: dict[str, Any]) -> str:
    return _render("task.jinja", task=task)


def render_step(thought: str, code: str) -> str:
    """The assistant turn of a parsed step."""
    return _render("agent_step.jinja", thought=thought.strip(), code=code.strip("\n"))


def clean_prefix(prefix: str | None) -> str | None:
    """A first-thought prefix as it is seeded: None when blank; no leading blanks or trailing spaces, but a
    trailing paragraph break is kept (the paper seeds "Thought: " + first paragraph + "\n\n", so the model starts
    a new paragraph rather than finishing the prefix's last sentence)."""
    if not isinstance(prefix, str) or not prefix.strip():
        return None
    return prefix.lstrip().rstrip(" \t")


def render_prefix(prefix: str | None) -> str:
    """The partial assistant turn a step starts with: "Thought:", or "Thought: <prefix>" with a first-thought
    prefix (step 1). The model continues it; the recorded turn starts with exactly these bytes."""
    return _render("agent_prefix.jinja", prefix=clean_prefix(prefix) or "")


def render_observation(observation: str) -> str:
    return _render("agent_observation.jinja", observation=observation if observation.strip() else EMPTY_OBSERVATION)


def render_parse_error(empty_code: bool = False) -> str:
    """The observation of a step whose reply has no runnable code block: what went wrong and how to fix it."""
    return _render("agent_parse_error.jinja", empty_code=empty_code)


def render_chat(
    instructions: str,
    tools: list[dict],
    task: dict[str, Any],
    history: list[dict],
    prefix: str | None = None,
    seed: bool = False,
) -> list[dict[str, str]]:
    """The prompt of the next step: system, task, then each earlier step (assistant) and its observation (user).

    history: [{'text': assistant turn, 'observation': str}, ...]. With `prefix` (or `seed`), a trailing partial
    assistant message "Thought: <prefix>" (or "Thought:") is appended; the LM continues it (see agentdistill.lm).
    """
    messages = [
        {"role": "system", "content": render_system(instructions, tools)},
        {"role": "user", "content": render_task(task)},
    ]
    messages += _turns(history)
    if (prefix is not None and prefix.strip()) or seed:
        messages.append({"role": "assistant", "content": render_prefix(prefix)})
    return messages


def _turns(history: list[dict]) -> list[dict[str, str]]:
    """Each earlier step as its assistant turn and its observation as the next user turn."""
    turns = []
    for step in history:
        turns.append({"role": "assistant", "content": step["text"]})
        turns.append({"role": "user", "content": render_observation(step["observation"])})
    return turns


def final_answer_chat(task: dict[str, Any], history: list[dict]) -> list[dict[str, str]]:
    """The ask when an agent runs out of steps, as the paper's agents make it (smolagents'
    `provide_final_answer`): a system prompt saying the agent got stuck, the agent's memory (the task and every
    step with its observation, without the agent's own system prompt), and a last user turn asking for the answer.
    We add one line asking for "Answer: ..." so the answer can be told from the reasoning around it."""
    return [
        {"role": "system", "content": _render("agent_final_system.jinja")},
        {"role": "user", "content": render_task(task)},
        *_turns(history),
        {"role": "user", "content": _render("agent_final_ask.jinja", task=render_task(task))},
    ]


def trajectory_to_chat(trajectory) -> list[dict[str, str]]:
    """The whole episode as one chat (SFT example): every step's prompt is a prefix of it, byte for byte."""
    steps = trajectory.steps
    history = [{"text": s.text, "observation": s.observation} for s in steps[:-1]]
    messages = render_chat(trajectory.instructions, trajectory.tools, trajectory.task, history)
    if steps:
        messages.append({"role": "assistant", "content": steps[-1].text})
    return messages


# --- the CoT baseline -------------------------------------------------------------------------------------------
def render_cot_answer(reasoning: str, answer: str) -> str:
    return _render("cot_answer.jinja", reasoning=(reasoning or "").strip(), answer=str(answer).strip())


def cot_chat(
    instructions: str, task: dict[str, Any], reasoning: str | None = None, answer: str | None = None
) -> list[dict[str, str]]:
    """The CoT prompt (system, task); with an answer, the assistant turn too (an SFT example of CoT distillation)."""
    messages = [
        {"role": "system", "content": _render("cot_system.jinja", instructions=instructions.strip())},
        {"role": "user", "content": render_task(task)},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": render_cot_answer(reasoning or "", answer)})
    return messages

