"""`Trajectory`: the record of one agent episode, lossless to JSON and back (the unit of distillation data).

    pred = agent(question="What is 2**10?")
    traj = pred.trajectory
    traj.messages              # the exact chat the model saw, final assistant turn included (== trajectory_to_chat)
    Trajectory.from_json(traj.to_json()) == traj
    traj.print()               # rich rendering in the terminal
    traj.void_turns            # steps that ran nothing (`is_void(step)`: SimpleTIR's filter drops such episodes)
"""

import ast
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Step:
    """One step: the model's reply, the code that ran, and what came back."""

    index: int
    text: str  # the assistant turn as recorded in the conversation
    raw: str  # the reply as generated (first-thought prefix included)
    thought: str
    code: str | None  # None: the reply had no runnable code block (parse error)
    observation: str  # what the model sees next (printed output / value / error / parse error)
    parse_error: bool = False
    stdout: str = ""
    value: str | None = None
    error: str | None = None
    error_kind: str | None = None  # None | "syntax" | "exception" | "timeout" | "memory" | "crash" | "output_limit"
    is_final: bool = False
    final_answer: Any = None
    tool_calls: list[dict] = field(default_factory=list)
    prefix: str | None = None  # the first-thought prefix this step was seeded with (step 0 only)
    usage: dict = field(default_factory=dict)  # LM tokens of this step, by model
    lm_seconds: float = 0.0
    exec_seconds: float = 0.0
    # SelfConsistency: every sampled candidate [{'text', 'parse_error', 'error', 'observation', 'vote_key',
    # 'void'}], the fraction that parsed, was not void and ran without error, the winner's share of those valid
    # ones, and how many candidates were void (see `is_void`).
    candidates: list[dict] | None = None
    valid_fraction: float | None = None
    agreement: float | None = None
    void_candidates: int | None = None

    @property
    def execution_error(self) -> bool:
        return self.error is not None


def is_void(step: "Step | dict") -> bool:
    """A void turn (SimpleTIR's filter): a non-final step that runs nothing - no code block, or code whose
    statements are all no-ops (comments, `pass`, a bare string or `...`). Such turns teach a student to stall.

    Code that does not parse is not void: it is an execution error the model sees and can fix.
    Accepts a `Step` or its dict form (a JSONL record).
    """
    get = step.get if isinstance(step, dict) else lambda key, default=None: getattr(step, key, default)
    if get("is_final", False):
        return False
    code = get("code")
    if code is None or not code.strip():
        return True
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return all(_is_noop(node) for node in tree.body)


def _is_noop(node: ast.stmt) -> bool:
    # a bare constant expression (docstring-like string, `...`, a number) evaluates nothing; an f-string does
    return isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))


# Counts written by to_dict for readers of the JSONL; recomputed from the steps, so ignored when loading.
DERIVED = {"parse_errors", "void_turns"}


@dataclass
class Trajectory:
    """One episode of a `CodeAgent` (see the module docstring)."""

    example_id: str | None
    instructions: str
    tools: list[dict]  # tool stubs as rendered in the system prompt: {'name', 'signature', 'doc'}
    task: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    first_thought_prefix: str | None = None
    final_answer: Any = None
    finished: bool = False  # final_answer(...) was called
    out_of_steps: bool = False
    # Out of steps, the agent asks once more for an answer (CodeAgent's final_answer_on_max_steps, as the paper):
    # the prediction carries it, but the episode stays unfinished (final_answer None), so the distillation filter
    # still drops it. forced_ask: {'messages', 'reply', 'source' ("final_answer" | "answer_line" | "reply"),
    # 'observation' (when the reply's code ran), 'usage', 'lm_seconds'}.
    forced_answer: Any = None
    forced_ask: dict | None = None
    usage: dict = field(default_factory=dict)  # total LM tokens, by model
    timings: dict = field(default_factory=dict)  # seconds: total, lm, exec

    @property
    def parse_errors(self) -> int:
        return sum(s.parse_error for s in self.steps)

    @property
    def execution_errors(self) -> int:
        return sum(s.execution_error for s in self.steps)

    @property
    def void_turns(self) -> int:
        """Steps that did nothing (see `is_void`)."""
        return sum(is_void(s) for s in self.steps)

    # --- JSON --------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        # derived; for readers of the JSONL, ignored when loading
        data["parse_errors"], data["void_turns"] = self.parse_errors, self.void_turns
        return data

    def toDict(self) -> dict:  # noqa: N802  (DSPy's name)
        """DSPy's serialization hook: `Example.toDict()`/`Prediction.toDict()` call it on their values, so
        `dspy.Evaluate(save_as_json=...)` and MLflow's traces write the trajectory as this record."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict) -> "Trajectory":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - DERIVED
        if unknown:
            raise ValueError(f"not a Trajectory record: unknown keys {sorted(unknown)}")
        values = {k: v for k, v in data.items() if k in known}
        values["steps"] = [Step(**s) for s in values.get("steps", [])]
        return cls(**values)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Trajectory":
        return cls.from_dict(json.loads(text))

    # --- display -----------------------------------------------------------------------------------------------
    def __rich__(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.syntax import Syntax
        from rich.text import Text

        parts = [Panel(Text("\n".join(f"{k}: {v}" for k, v in self.task.items())), title="task", style="bold")]
        for step in self.steps:
            body = [Text(step.thought or "(no thought)", style="italic")]
            if step.code is not None:
                body.append(Syntax(step.code, "python", theme="ansi_dark", word_wrap=True))
            style = "red" if (step.parse_error or step.error) else "green" if step.is_final else "cyan"
            body.append(Panel(Text(step.observation.rstrip() or "(none)"), title="observation", style=style))
            extra = f" | {len(step.tool_calls)} tool call(s)" if step.tool_calls else ""
            if step.valid_fraction is not None:
                extra += f" | valid {step.valid_fraction:.0%}, agreement {step.agreement:.0%}"
            title = f"step {step.index + 1} ({step.lm_seconds:.1f}s LM, {step.exec_seconds:.2f}s exec{extra})"
            parts.append(Panel(Group(*body), title=title))
        status = "finished" if self.finished else "out of steps" if self.out_of_steps else "stopped"
        if self.forced_ask is not None:
            status += f", asked for an answer: {self.forced_answer!r}"
        parts.append(Text(f"answer: {self.final_answer!r} ({status}, {len(self.steps)} steps, "
                          f"{self.parse_errors} parse errors)", style="bold"))
        return Group(*parts)

    def print(self, console=None) -> None:
        """Print the trajectory with rich (thought, syntax-highlighted code and observation per step)."""
        from rich.console import Console

        (console or Console()).print(self)
