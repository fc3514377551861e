"""`AgentDistill`: distill a teacher code agent into a small student model (Kang et al. 2025).

    import agentdistill as ad
    distill = ad.optimizers.AgentDistill(metric=ad.benchmarks.answer_correct, first_thought_prefix=True,
                                         sft=ad.optimizers.SFT(epochs=2), num_threads=4, store="runs/math.jsonl")
    small_agent = distill.compile(student, trainset=train, teacher=teacher)      # a NEW program; inputs untouched

compile():
1. first-thought prefixes (as the paper's code): the teacher LM answers each task with its plain chain of thought
   (the CoT baseline's prompt, stored as kind "cot" under CoTDistill's key, so CoTDistill on the same store and LM
   asks nothing); the first paragraph seeds the agent's first step as "Thought: <paragraph>\n\n";
2. teacher trajectories: the teacher CodeAgent runs every task in threads; each finished trajectory is appended to
   the JSONL store at once, keyed by example id + a hash of the settings that shape it (a rerun runs only what is
   missing);
3. filtering: right answer (metric, on the student's own prediction), no parse failure, no void turn, not out of
   steps (steps with execution errors stay);
4. SFT data: one chat per kept trajectory, exactly as the student renders it at inference (`Trajectory.messages`,
   from `agentdistill.programs.rendering`), with the student's prompt (`student_instructions`, default the
   paper's short one: no worked example), loss on assistant turns only;
5. fine-tuning (TRL + LoRA, see training.py);
6. the compiled student: a copy of the student with that prompt, on a new LM for the trained checkpoint.
MLflow: one parent run per compile with child runs "generation", "training" and (with valset) "evaluation".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import dspy

from agentdistill.optimizers import teacher_runs
from agentdistill.optimizers.cot_distill import cot_settings, generate_answers
from agentdistill.optimizers.filtering import filter_trajectories
from agentdistill.optimizers.first_thought import prefix_solver, seed_prefix
from agentdistill.optimizers.store import (TrajectoryStore, lm_settings, settings_hash, template_digest,
                                           tool_fingerprint)
from agentdistill.optimizers.teleprompter import DistillTeleprompter, example_ids
from agentdistill.optimizers.training import SFT
from agentdistill.programs.code_agent import EXAMPLE_HEADER
from agentdistill.programs.protocols import DistillableAgent, program_lm

# bump when the way prefixes are made changes (new store keys). v2: the paper's way - the teacher's plain CoT answer
# (stored as kind "cot", shared with CoTDistill), its first paragraph, seeded with the paragraph break.
PREFIX_METHOD = "cot-first-paragraph/v2"


class AgentDistill(DistillTeleprompter):
    """Agent distillation teleprompter: teacher trajectories -> filter -> SFT -> compiled student; programs:
    `DistillableAgent` (a CodeAgent, or your own type with its members).

    Args:
        metric: metric(example, prediction, trace=None) -> bool, grading a trajectory's final answer on the
            prediction the student returns at evaluation (its signature's output field, a `Trajectory`).
        first_thought_prefix: seed the teacher's first thought with the first paragraph of its own CoT answer.
        student_instructions: the task description in the student's system prompt, for its SFT chats and for the
            compiled program alike. "short" (default, as the paper's `system_prompt_short`): the student's own
            instructions without their worked example (the system prompt keeps the step format and the tools);
            "teacher": the teacher's instructions as they are (its example included); None: the student's own as
            they are; any other string: that text.
        cot_instructions: instructions of the CoT prompt that makes the prefixes (default: the CoT baseline's
            default for the signature). Give the ones of your `CoTDistill` teacher to share its answers.
        sft, num_threads, store, student_model, track, backend: see `DistillTeleprompter`.

    Example:
        >>> distill = AgentDistill(metric=answer_correct, sft=SFT(max_steps=100), store="runs/t.jsonl")
        >>> small = distill.compile(student, trainset=train, teacher=teacher)   # doctest: +SKIP
    """

    name, protocol, other = "AgentDistill", DistillableAgent, "CoTDistill"
    record, records = "trajectory", "trajectories"
    nothing_kept_hint = "use a stronger teacher, more tasks, more max_steps, or check the metric"

    def __init__(self, metric: Callable, first_thought_prefix: bool = True, sft: SFT | None = None,
                 num_threads: int = 1, store: str | Path | None = None, student_model: str | None = None,
                 track: bool = True, student_instructions: str | None = "short", cot_instructions: str | None = None,
                 train: SFT | None = None, backend: str | None = None):
        super().__init__(metric, sft=sft, num_threads=num_threads, store=store, student_model=student_model,
                         track=track, train=train, backend=backend)
        if student_instructions is not None and (not isinstance(student_instructions, str)
                                                 or not student_instructions.strip()):
            raise ValueError('AgentDistill(student_instructions=...) takes "short", "teacher", None (the student\'s '
                             f"own) or the instructions text; got {student_instructions!r}")
        self.first_thought_prefix = first_thought_prefix
        self.student_instructions = student_instructions
        self.cot_instructions = cot_instructions

    # --- keys of the store ----------------------------------------------------------------------------------
    def prefix_settings(self, teacher, teacher_lm) -> str:
        """The prefixes are a function of the stored CoT answers: their key (CoTDistill's) + the method."""
        return settings_hash(kind="prefix", method=PREFIX_METHOD,
                             cot=cot_settings(prefix_solver(teacher, self.cot_instructions), teacher_lm))

    def trajectory_settings(self, teacher, teacher_lm) -> str:
        """Everything that shapes a teacher trajectory: LM, prompt (text and template files), tools and what backs
        them, sandbox limits, the Thought: seed and continuation settings, step limits, the prefix."""
        return settings_hash(kind="trajectory", lm=lm_settings(teacher_lm), signature=teacher.signature.signature,
                             instructions=teacher.instructions, tools=teacher.tool_specs,
                             tool_backing=[tool_fingerprint(t) for t in teacher.tools], max_steps=teacher.max_steps,
                             max_tokens=teacher.max_tokens, sandbox=_sandbox_settings(teacher),
                             seed_thought=teacher.adapter.seed_thought,
                             continuation=teacher.adapter.continuation(teacher_lm), templates=template_digest("agent"),
                             prefix=self.prefix_settings(teacher, teacher_lm) if self.first_thought_prefix else None)

    # --- steps 1 + 2: teacher outputs --------------------------------------------------------------------------
    def generate(self, trainset: list, teacher: dspy.Module) -> list[dict | None]:
        """Prefixes and trajectories for every task, from the store where it has them; returns trajectory dicts.

        Usable on its own (e.g. to collect trajectories on one machine and train on another).
        """
        self.check(teacher, "teacher")
        teacher = _without_final_ask(teacher)
        teacher_lm = program_lm(teacher)
        store = TrajectoryStore(self.store_path)
        t_key = self.trajectory_settings(teacher, teacher_lm)
        ids = example_ids(trainset)
        missing = [i for i in range(len(trainset)) if not store.has("trajectory", ids[i], t_key)]
        t0 = time.perf_counter()

        # step 1: one CoT pass on the teacher's LM for the tasks still to run, stored as CoTDistill stores it
        prefixes: dict[int, str | None] = dict.fromkeys(missing)
        errors: dict[int, dict] = {}
        cot_calls = 0
        if self.first_thought_prefix and missing:
            solver = prefix_solver(teacher, self.cot_instructions)
            solver.set_lm(teacher_lm)
            answers, cot_calls = generate_answers([trainset[i] for i in missing], solver, store, self.num_threads)
            for i, rec in zip(missing, answers):
                if teacher_runs.is_task_error(rec):
                    errors[i] = rec  # no prefix, no trajectory: a rerun asks this task again
                else:
                    prefixes[i] = seed_prefix(rec.get("reasoning"))

        # step 2: the teacher agent on each task, its first thought seeded by the prefix
        def one(i: int):
            task = teacher.task_from(dict(trainset[i].inputs()))
            pred = teacher(**task, first_thought_prefix=prefixes[i], example_id=ids[i])
            traj = pred.trajectory.to_dict()
            store.put("trajectory", ids[i], t_key, traj)  # appended + fsynced now: a crash keeps it
            return traj

        to_run = [i for i in missing if i not in errors]
        fresh = teacher_runs.run_threads(one, to_run, self.num_threads,
                                     f"teacher trajectories ({len(trainset) - len(missing)} stored)")
        errors.update({i: r for i, r in zip(to_run, fresh) if teacher_runs.is_task_error(r)})
        out = [errors.get(i) or store.get("trajectory", ids[i], t_key) for i in range(len(trainset))]
        self.last_stats.update(teacher_calls_cot=cot_calls, teacher_calls_trajectory=len(to_run),
                               reused_trajectories=len(trainset) - len(missing), teacher_errors=len(errors),
                               generation_seconds=time.perf_counter() - t0)
        return out

    # --- the student's prompt ----------------------------------------------------------------------------------
    def student_prompt(self, student, teacher) -> str:
        """The instructions the student is trained and run with (see `student_instructions`)."""
        mode = self.student_instructions
        if mode == "short":
            return short_instructions(student)
        if mode == "teacher":
            return teacher.instructions
        return student.instructions if mode is None else mode

    # --- the strategy of the compile() skeleton (optimizers.teleprompter) ----------------------------------------
    def prepared_student(self, student, teacher):
        # the student as it is trained and run: a copy with its prompt set (the input student is never changed)
        return with_instructions(student, self.student_prompt(student, teacher))

    def filter(self, trainset: list, records: list, program):
        return filter_trajectories(list(zip(trainset, records)), self.metric, program=program,
                                   ids=example_ids(trainset))

    def chats(self, program, kept: list) -> list[list[dict]]:
        return [student_chat(program, traj) for _, traj in kept]

    def run_name(self, teacher, teacher_lm, chats: list) -> str:
        return f"student-{self.trajectory_settings(teacher, teacher_lm)}-{_chat_hash(chats)}"

    def run_params(self, student, teacher) -> dict:
        return {"first_thought_prefix": self.first_thought_prefix,
                "student_instructions": _mode(self.student_instructions),
                "filter": "metric+no_parse_error+no_void_turn+not_out_of_steps", "max_steps": teacher.max_steps}

    def get_params(self) -> dict[str, Any]:
        return {"first_thought_prefix": self.first_thought_prefix, "num_threads": self.num_threads,
                "student_instructions": self.student_instructions, "cot_instructions": self.cot_instructions,
                "store": str(self.store_path), **self.sft.to_params()}


def short_instructions(agent) -> str:
    """The agent's instructions without the worked example CodeAgent appends to them (`example=`): the paper's
    student prompt (`system_prompt_short`) is the step format and the tools with no example, and the system
    template already renders those two."""
    return agent.instructions.split(EXAMPLE_HEADER, 1)[0].strip()


def with_instructions(agent, instructions: str):
    """A copy of the agent whose step predictor has these instructions (the agent's prompt; the input is kept)."""
    prompted = agent.deepcopy()
    prompted.step.signature = prompted.step.signature.with_instructions(instructions)
    return prompted


def student_chat(student, traj: dict, instructions: str | None = None) -> list[dict]:
    """The SFT chat of one teacher trajectory, rendered as the STUDENT sees it at inference (its own system
    prompt - `instructions` if given - and tools; the teacher's steps and observations), by the one renderer."""
    from agentdistill.programs import Trajectory
    from agentdistill.programs.rendering import trajectory_to_chat

    t = Trajectory.from_dict(traj)
    t.instructions, t.tools = instructions if instructions is not None else student.instructions, student.tool_specs
    return trajectory_to_chat(t)


def _sandbox_settings(agent) -> dict:
    # the limits of the sandbox the agent runs in (a user-given one, else the one it will create), normalized so
    # the key is the same before and after the sandbox starts
    sandbox = getattr(agent, "_sandbox", None)
    opts = agent.sandbox_options if sandbox is None else {k: getattr(sandbox, k, None)
                                                          for k in ("timeout", "memory_mb", "output_limit")}
    return {"timeout": float(opts["timeout"]), "memory_mb": opts["memory_mb"] and int(opts["memory_mb"]),
            "output_limit": int(opts["output_limit"])}


def _mode(student_instructions) -> str:
    return student_instructions if student_instructions in ("short", "teacher") else \
        "student" if student_instructions is None else "custom"


def _chat_hash(chats) -> str:
    return settings_hash(chats=chats)[:8]


def _without_final_ask(agent):
    """The teacher as it generates: out-of-steps trajectories are filtered out whatever they answer, so the
    paper's extra final-answer call when steps run out would only cost teacher time (a copy; the input is kept)."""
    if not getattr(agent, "final_answer_on_max_steps", False):
        return agent
    agent = agent.deepcopy()
    agent.final_answer_on_max_steps = False
    return agent
