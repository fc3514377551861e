"""`CoTDistill`: the paper's baseline - distill the teacher's chain-of-thought answers into the student.

    distill = ad.optimizers.CoTDistill(metric=ad.benchmarks.answer_correct, sft=ad.optimizers.SFT(epochs=2))
    small_cot = distill.compile(student_cot, trainset=train, teacher=teacher_cot)   # ChainOfThoughtSolver programs

Teacher CoT answers (one call per task, stored in the same resumable JSONL store; `AgentDistill` with a first-thought
prefix stores the same answers, so on the same store and teacher LM this asks nothing) -> keep the ones the metric
accepts (graded on the solver's own prediction) -> SFT on (task, reasoning + "Answer: x") chats rendered exactly as
the student's CoT program renders them -> the compiled student. The compile() skeleton, store, training and MLflow
tracking are `AgentDistill`'s (optimizers.teleprompter).
"""

from __future__ import annotations

import time

import dspy

from agentdistill.optimizers import teacher_runs
from agentdistill.optimizers.filtering import filter_answers
from agentdistill.optimizers.store import TrajectoryStore, example_id, lm_settings, settings_hash, template_digest
from agentdistill.optimizers.teleprompter import DistillTeleprompter, example_ids
from agentdistill.programs.protocols import DistillableCoT, program_lm


class CoTDistill(DistillTeleprompter):
    """CoT distillation teleprompter (baseline of Kang et al. 2025); programs: `DistillableCoT`.

    Args:
        metric: metric(example, prediction, trace=None) -> bool on the teacher's answer, graded as the student's
            prediction.
        sft, num_threads, store, student_model, track, backend: see `DistillTeleprompter`.

    Example:
        >>> small = CoTDistill(metric=answer_correct).compile(student, trainset=train, teacher=teacher)  # doctest: +SKIP
    """

    name, protocol, other = "CoTDistill", DistillableCoT, "AgentDistill"
    record, records = "answer", "answers"

    def answer_settings(self, teacher, teacher_lm) -> str:
        return cot_settings(teacher, teacher_lm)

    def generate(self, trainset: list, teacher: dspy.Module) -> list[dict]:
        """The teacher's {"task", "reasoning", "answer", "raw", "parse_error"} for every task (stored ones are not
        asked again; `AgentDistill` with a first-thought prefix stores the same records)."""
        self.check(teacher, "teacher")
        t0 = time.perf_counter()
        out, asked = generate_answers(trainset, teacher, TrajectoryStore(self.store_path), self.num_threads)
        self.last_stats.update(teacher_calls=asked, reused_answers=len(trainset) - asked,
                               generation_seconds=time.perf_counter() - t0)
        return out

    def filter(self, trainset: list, records: list, program: dspy.Module):
        # graded as the STUDENT's predictions: what the metric sees when the compiled program is evaluated
        return filter_answers(list(zip(trainset, records)), self.metric, program=program, ids=example_ids(trainset))

    def chats(self, program, kept: list) -> list[list[dict]]:
        # rendered by the STUDENT's program: its own instructions, the one CoT renderer
        return [program.chat(rec["task"], rec["reasoning"], rec["answer"]) for _, rec in kept]

    def run_name(self, teacher, teacher_lm, chats: list) -> str:
        return f"cot-student-{settings_hash(chats=chats)[:12]}"

    def run_params(self, student, teacher) -> dict:
        return {"filter": "metric"}


def cot_settings(solver, lm) -> str:
    """The store key of `solver`'s answers on `lm`: everything that shapes the CoT prompt and its generation."""
    return settings_hash(kind="cot", lm=lm_settings(lm), signature=solver.signature.signature,
                         instructions=solver.instructions, max_tokens=solver.max_tokens,
                         templates=template_digest("cot"))


def generate_answers(trainset: list, solver, store: TrajectoryStore, num_threads: int = 1) -> tuple[list[dict], int]:
    """`solver`'s CoT record for every task, from the store (kind "cot", key `cot_settings`) where it has one, else
    asked now (threads) and stored at once. Returns (records in trainset order, how many were asked); a task whose
    call failed gets {"error": ...} and nothing stored, so a rerun asks it again."""
    lm = program_lm(solver)
    key = cot_settings(solver, lm)
    ids = [example_id(ex) for ex in trainset]

    def one(i: int):
        task = solver.task_from(dict(trainset[i].inputs()))
        pred = solver(**task)
        raw = pred.messages[-1]["content"] if pred.messages and pred.messages[-1]["role"] == "assistant" else ""
        # "answer" is the record's field for the output (whatever the signature calls it); see answer_prediction
        rec = {"task": task, "reasoning": pred.reasoning, "answer": pred.get(solver.output_name), "raw": raw,
               "parse_error": pred.parse_error}
        store.put("cot", ids[i], key, rec)
        return rec

    missing = [i for i in range(len(trainset)) if not store.has("cot", ids[i], key)]
    fresh = dict(zip(missing, teacher_runs.run_threads(one, missing, num_threads,
                                                   f"teacher CoT answers ({len(trainset) - len(missing)} stored)")))
    return [fresh[i] if i in fresh else store.get("cot", ids[i], key) for i in range(len(trainset))], len(missing)
