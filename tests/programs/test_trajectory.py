"""Trajectory records: lossless JSON round-trip, derived counts, rich rendering, re-rendering to the chat."""

import io
import json
from dataclasses import asdict

import pytest
from rich.console import Console

from agentdistill.programs import Trajectory, trajectory_to_chat
from agentdistill.programs.rendering import render_chat, render_step
from agentdistill.programs.trajectory import Step

TOOLS = [{"name": "final_answer", "signature": "(answer) -> None", "doc": "Ends the task with the answer."}]


def make_trajectory() -> Trajectory:
    task = {"question": "Wie viel ist 2¹⁰? ✓"}
    steps = [
        Step(index=0, text="Thought: no code here", raw="Thought: no code here", thought="no code here", code=None,
             observation="Error: your reply has no ```python code block", parse_error=True, prefix="First,",
             usage={"m": {"prompt_tokens": 10, "completion_tokens": 3}}, lm_seconds=0.5),
        Step(index=1, text=render_step("compute", "print(2 ** 10)"), raw="Thought: compute\n```python\nprint(2 ** 10)",
             thought="compute", code="print(2 ** 10)", observation="1024\n", stdout="1024\n",
             tool_calls=[{"name": "search", "args": ["x"], "kwargs": {"k": 2}, "result": ["p1", "p2"]}],
             candidates=[{"text": "a", "parse_error": None, "error": None, "observation": "1024", "vote_key": "k"}],
             valid_fraction=0.75, agreement=2 / 3, exec_seconds=0.01),
        Step(index=2, text=render_step("done", "final_answer({'n': 1024, 'ok': [1, None]})"), raw="...",
             thought="done", code="final_answer({'n': 1024, 'ok': [1, None]})", observation="", is_final=True,
             final_answer={"n": 1024, "ok": [1, None]}),
    ]
    traj = Trajectory(example_id="ex-1", instructions="Solve it.", tools=TOOLS, task=task, steps=steps,
                      first_thought_prefix="First,", final_answer={"n": 1024, "ok": [1, None]}, finished=True,
                      usage={"m": {"prompt_tokens": 10}}, timings={"total_s": 1.5})
    traj.messages = trajectory_to_chat(traj)
    return traj


def test_json_round_trip_is_lossless():
    traj = make_trajectory()
    text = traj.to_json()
    back = Trajectory.from_json(text)
    assert back == traj
    assert back.to_json() == text
    assert '"parse_errors": 1' in text  # derived count written for readers of the JSONL


def test_derived_counts():
    traj = make_trajectory()
    assert traj.parse_errors == 1 and traj.execution_errors == 0


def test_from_json_rejects_other_records():
    with pytest.raises(ValueError, match="unknown keys"):
        Trajectory.from_dict({"example_id": "x", "instructions": "", "tools": [], "task": {}, "questionn": 1})


def test_chat_is_the_rendered_conversation_and_each_prompt_is_a_prefix():
    traj = make_trajectory()
    chat = traj.messages
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert chat[-1]["content"] == traj.steps[-1].text  # the final turn, no observation after it
    for k in range(len(traj.steps)):  # the prompt of step k is the chat up to it
        history = [{"text": s.text, "observation": s.observation} for s in traj.steps[:k]]
        prompt = render_chat(traj.instructions, traj.tools, traj.task, history)
        assert chat[: len(prompt)] == prompt


def test_rich_rendering_shows_steps_code_and_answer():
    out = io.StringIO()
    make_trajectory().print(Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    assert "print(2 ** 10)" in text and "1024" in text and "step 3" in text
    assert "valid 75%, agreement 67%" in text
    assert "finished, 3 steps, 1 parse errors" in text


# --- void turns (SimpleTIR's filter): a non-final step that does nothing ---------------------------------------
def _step(code, is_final=False, **kw) -> Step:
    return Step(index=0, text="t", raw="t", thought="t", code=code, observation="o", is_final=is_final,
                parse_error=code is None, **kw)


@pytest.mark.parametrize("code", [
    None,                                   # no code block (a parse error)
    "# just a comment",
    "pass",
    "'''I will think about it.'''",
    "...",
    "# plan\npass\n\n'still thinking'\n...",
])
def test_is_void_for_steps_that_run_nothing(code):
    from agentdistill.programs.trajectory import is_void

    step = _step(code)
    assert is_void(step) and is_void(asdict(step))  # the Step and its JSONL dict form agree


@pytest.mark.parametrize("code", [
    "print(1)",
    "x = 1  # keep",
    "'doc'\nprint(x)",
    "search('Paris')",
    "1 +",              # a syntax error is an execution error the model sees and learns from, not a void turn
    "f'{x}'",           # an f-string evaluates names: it runs something
])
def test_is_not_void_when_code_does_something(code):
    from agentdistill.programs.trajectory import is_void

    assert not is_void(_step(code)) and not is_void(asdict(_step(code)))


def test_final_step_is_never_void():
    from agentdistill.programs.trajectory import is_void

    assert not is_void(_step("final_answer(3)", is_final=True, final_answer=3))
    assert not is_void({"code": None, "is_final": True})


def test_void_turns_are_counted_and_written_to_json():
    traj = make_trajectory()
    traj.steps.insert(1, _step("# nothing to do yet"))
    assert traj.void_turns == 2  # the parse error of step 1 and the comment-only step
    data = json.loads(traj.to_json())
    assert data["void_turns"] == 2
    assert Trajectory.from_dict(data) == traj  # the derived count is ignored when loading
