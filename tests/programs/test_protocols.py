"""The documented protocols of what the teleprompters distill: the shipped programs implement them, a user's own
agent type with those members is distilled by the same teleprompter, and a program without them is refused with
the members it lacks named."""

import dspy
import pytest

from agentdistill.optimizers import AgentDistill, CoTDistill
from agentdistill.programs import ChainOfThoughtSolver, CodeAgent
from agentdistill.programs.protocols import DistillableAgent, DistillableCoT
from tests.optimizers.fake_teacher import metric, tasks, teacher_lm


RAN = []


class OwnAgent(dspy.Module):
    """A user's agent type (not a CodeAgent subclass): it delegates the steps to an inner CodeAgent and logs the
    tasks it ran (in RAN: AgentDistill runs a copy of the teacher)."""

    def __init__(self):
        super().__init__()
        self.inner = CodeAgent("question -> answer", max_steps=3)

    def __getattr__(self, name):  # the protocol's members, from the inner agent (not as sub-modules of this one)
        if name in {"signature", "instructions", "step", "tools", "tool_specs", "max_steps", "max_tokens", "adapter",
                    "sandbox_options", "final_answer_on_max_steps", "task_from", "outputs"}:
            return getattr(self.__dict__["inner"], name)
        raise AttributeError(name)

    def forward(self, first_thought_prefix=None, example_id=None, **task):
        RAN.append(task["question"])
        return self.inner(first_thought_prefix=first_thought_prefix, example_id=example_id, **task)


def test_the_shipped_programs_implement_their_protocols():
    agent, cot = CodeAgent("question -> answer"), ChainOfThoughtSolver("question -> answer")
    assert isinstance(agent, DistillableAgent) and not isinstance(agent, DistillableCoT)
    assert isinstance(cot, DistillableCoT) and not isinstance(cot, DistillableAgent)
    agent.close()


def test_a_users_own_agent_type_is_distilled_by_agent_distill(tmp_path):
    teacher = OwnAgent()
    teacher.set_lm(teacher_lm()[0])
    assert isinstance(teacher, DistillableAgent)
    trajs = AgentDistill(metric=metric, store=tmp_path / "store.jsonl", first_thought_prefix=False,
                         track=False).generate(tasks([10]), teacher)
    assert RAN == ["What is 10 + 17?"] and trajs[0]["finished"]
    teacher.inner.close()


def test_a_program_without_the_members_is_refused_with_them_named(tmp_path):
    with pytest.raises(TypeError, match=r"OwnCoT is not a DistillableAgent \(missing .*max_steps.*tool_specs"):
        AgentDistill(metric=metric, track=False).check(type("OwnCoT", (), {"__call__": lambda self: None})(),
                                                        "teacher")
    with pytest.raises(TypeError, match=r"CodeAgent is not a DistillableCoT \(missing chat, output_name, "
                                        r"prediction\).*AgentDistill"):
        CoTDistill(metric=metric, track=False).check(CodeAgent("question -> answer"), "student")
