"""What the teleprompters accept as a program: `DistillableAgent` (AgentDistill) and `DistillableCoT` (CoTDistill).

    from agentdistill.programs.protocols import DistillableAgent
    isinstance(my_program, DistillableAgent)   # True for a CodeAgent, and for your own class with these members

`CodeAgent` and `ChainOfThoughtSolver` implement them; `program_lm(program)` is the one LM a program runs on. A program type of your own is distilled by the same
teleprompter when it has every member below with the meaning given; the check is structural (a missing member is
named in the TypeError), the meaning is yours to keep.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import dspy


@runtime_checkable
class DistillableAgent(Protocol):
    """An agent that AgentDistill runs as the teacher and trains as the student.

    Its prediction carries `trajectory` (a `Trajectory`); the store key is made of the settings named here, so two
    agents with equal settings share teacher trajectories.
    """

    signature: Any  # the dspy.Signature of the task (inputs -> outputs)
    instructions: str  # the task description rendered into its system prompt
    step: dspy.Predict  # the predictor of one step: AgentDistill sets the student's instructions on its signature
    tools: list  # the callables it may call from code (fingerprinted into the store key)
    tool_specs: list  # how the tools are described to the model
    max_steps: int
    max_tokens: int | None
    adapter: Any  # has `seed_thought` and `continuation(lm)`: how each step's reply is started and continued
    sandbox_options: dict  # the limits of the sandbox it creates: timeout, memory_mb, output_limit
    final_answer_on_max_steps: bool  # ask for an answer when steps run out (AgentDistill turns it off for teachers)

    def __call__(self, *, first_thought_prefix: str | None = None, example_id: str | None = None,
                 **task) -> dspy.Prediction: ...

    def task_from(self, inputs: dict) -> dict: ...  # an example's inputs -> the task the agent is called with

    def outputs(self, trajectory) -> dict: ...  # the signature's output fields of a finished trajectory

    def set_lm(self, lm) -> None: ...

    def deepcopy(self) -> "DistillableAgent": ...

    def predictors(self) -> list: ...


@runtime_checkable
class DistillableCoT(Protocol):
    """A chain-of-thought program that CoTDistill asks as the teacher and trains as the student."""

    signature: Any
    instructions: str
    max_tokens: int | None
    output_name: str  # the signature's one output field

    def __call__(self, **task) -> dspy.Prediction: ...  # .reasoning, .<output_name>, .messages, .parse_error

    def task_from(self, inputs: dict) -> dict: ...

    def chat(self, task: dict, reasoning: str | None, answer: str | None, raw: str = "") -> list[dict]: ...

    def prediction(self, task, reasoning, answer, raw, parse_error, **extra) -> dspy.Prediction: ...

    def set_lm(self, lm) -> None: ...

    def deepcopy(self) -> "DistillableCoT": ...

    def predictors(self) -> list: ...


def program_lm(program: dspy.Module) -> dspy.BaseLM:
    """The LM a program runs on: its predictors' LM (all the same), else the configured dspy.settings.lm."""
    lms = {id(p.lm): p.lm for p in program.predictors() if p.lm is not None}
    if len(lms) > 1:
        raise ValueError("the program's predictors use different LMs; distillation needs one LM per program")
    lm = next(iter(lms.values()), None) or dspy.settings.lm
    if lm is None:
        raise ValueError(
            f"{type(program).__name__} has no LM: call program.set_lm(lm) or dspy.configure(lm=...) first"
        )
    return lm


def lm_name(lm) -> str:
    return str(getattr(lm, "model", None) or type(lm).__name__)


def check_program(program, protocol: type, role: str, teleprompter: str, other: str) -> None:
    """A TypeError naming every member `program` lacks, unless it implements `protocol`."""
    if isinstance(program, protocol):
        return
    missing = sorted(name for name in _members(protocol) if not hasattr(program, name))
    raise TypeError(
        f"{teleprompter} cannot distill the {role}: {type(program).__name__} is not a {protocol.__name__} "
        f"(missing {', '.join(missing)}); use an agentdistill.programs "
        f"{'CodeAgent' if protocol is DistillableAgent else 'ChainOfThoughtSolver'}, give your program those "
        f"members (see agentdistill.programs.protocols), or use {other}"
    )


def _members(protocol: type) -> set[str]:
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return names | {"__call__"}
