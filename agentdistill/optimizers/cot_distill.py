"""`CoTDistill`: the paper's baseline - distill the teacher's chain-of-thought answers into the student.

    distill = ad.optimizers.CoTDistill(metric=ad.benchmarks.answer_correct, sft=ad.optimizers.SFT(epochs=2))
    small_cot = distill.compile(student_cot, trainset=train, teacher=teacher_cot)   # ChainOfThoughtSolver programs

Teacher CoT answers (one call per task, stored in the same resumable JSONL store; `AgentDistill` with a first-thought
prefix stores the same answers, so on the same store and teacher LM this asks nothing) -> keep the ones the metric
accepts (graded on the solver's own prediction) -> SFT on (task, reasoning + "Answer: x") chats rendered exactly as
the student's CoT program renders them -> the compiled student. Same store, training and MLflow tracking as
`AgentDistill`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import dspy
from dspy.teleprompt import Teleprompter

from agentdistill.optimizers import pipeline
from agentdistill.optimizers.filtering import FilterReport, filter_answers
from agentdistill.optimizers.store import TrajectoryStore, example_id, lm_settings, settings_hash, template_digest
from agentdistill.optimizers.training import SFT


class CoTDistill(Teleprompter):
    """CoT distillation teleprompter (baseline of Kang et al. 2025).

    Args:
        metric: metric(example, prediction, trace=None) -> bool on the teacher's answer.
        sft, num_threads, store, student_model, track, backend: as in `AgentDistill`.

    Example:
        >>> small = CoTDistill(metric=answer_correct).compile(student, trainset=train, teacher=teacher)  # doctest: +SKIP
    """

    def __init__(self, metric: Callable, sft: SFT | None = None, num_threads: int = 1,
                 store: str | Path | None = None, student_model: str | None = None, track: bool = True,
                 train: SFT | None = None, backend: str | None = None):
        super().__init__()
        if not callable(metric):
            raise TypeError("CoTDistill(metric=...) needs a callable metric(example, prediction, trace=None)")
        self.metric = metric
        self.sft = sft or train or SFT()
        self.num_threads = num_threads
        self.output_dir = Path(self.sft.output_dir or "agentdistill_runs")
        self.store_path = Path(store) if store is not None else self.output_dir / "trajectories.jsonl"
        self.student_model = student_model
        self.track = track
        self.backend = pipeline.check_backend(backend)
        self.last_report: FilterReport | None = None
        self.last_stats: dict[str, Any] = {}

    def answer_settings(self, teacher, teacher_lm) -> str:
        return cot_settings(teacher, teacher_lm)

    def generate(self, trainset: list, teacher: dspy.Module) -> list[dict]:
        """The teacher's {"task", "reasoning", "answer", "raw", "parse_error"} for every task (stored ones are not
        asked again; `AgentDistill` with a first-thought prefix stores the same records)."""
        _check_cot(teacher, "teacher")
        t0 = time.perf_counter()
        out, asked = generate_answers(trainset, teacher, TrajectoryStore(self.store_path), self.num_threads)
        self.last_stats.update(teacher_calls=asked, reused_answers=len(trainset) - asked,
                               generation_seconds=time.perf_counter() - t0)
        return out

    def compile(self, student: dspy.Module, *, trainset: list, teacher: dspy.Module | dspy.BaseLM,
                valset: list | None = None) -> dspy.Module:
        if not trainset:
            raise ValueError("CoTDistill.compile needs a non-empty trainset of dspy.Example (with_inputs set)")
        _check_cot(student, "student")
        if isinstance(teacher, dspy.BaseLM):
            lm, teacher = teacher, student.deepcopy()
            teacher.set_lm(lm)
        _check_cot(teacher, "teacher")
        teacher_lm, student_lm = pipeline.program_lm(teacher), pipeline.program_lm(student)
        base_model = pipeline.student_model_source(student_lm, self.student_model)
        self.last_stats = {}
        params = {"teacher": pipeline.lm_name(teacher_lm), "student": pipeline.lm_name(student_lm),
                  "student_base_model": base_model, "filter": "metric", "trainset_size": len(trainset),
                  "store": str(self.store_path), **self.sft.to_params()}
        with pipeline.mlflow_run("CoTDistill", params, enabled=self.track, parent=True):
            with pipeline.mlflow_run("generation", {"teacher": params["teacher"]}, enabled=self.track):
                answers = self.generate(trainset, teacher)
                ids = [example_id(ex) for ex in trainset]
                # graded as the STUDENT's predictions: what the metric sees when the compiled program is evaluated
                kept, report = filter_answers(list(zip(trainset, answers)), self.metric, program=student, ids=ids)
                self.last_report = report
                pipeline.log_metrics({"teacher_success_rate": report.success_rate, "kept": report.kept}, self.track)
            pipeline.log_metrics({"teacher_success_rate": report.success_rate, "kept_answers": report.kept},
                                 self.track)
            pipeline.log_store(self.store_path, self.track)
            if not kept:
                pipeline.log_json_artifact(report.summary(), "filter_report.json", self.track)
                raise RuntimeError(f"CoTDistill: no teacher answer passed the filter ({report.why_nothing_kept()}); "
                                   "use a stronger teacher or more tasks, or check the metric")
            # rendered by the STUDENT's program: its own instructions, the one CoT renderer
            chats = [student.chat(rec["task"], rec["reasoning"], rec["answer"]) for _, rec in kept]
            run_dir = self.output_dir / f"cot-student-{settings_hash(chats=chats)[:12]}"
            compiled = pipeline.train_and_compile(
                student, chats, sft=self.sft, base_model=base_model, student_lm=student_lm, run_dir=run_dir,
                metric=self.metric, valset=valset, num_threads=self.num_threads, stats=self.last_stats,
                track=self.track, report=report, backend=self.backend)
            # after training: the report then holds what training found too (chats over max_length: `truncated`)
            pipeline.log_json_artifact(report.summary(), "filter_report.json", self.track)
        return compiled

    def get_params(self) -> dict[str, Any]:
        return {"num_threads": self.num_threads, "store": str(self.store_path), **self.sft.to_params()}


def cot_settings(solver, lm) -> str:
    """The store key of `solver`'s answers on `lm`: everything that shapes the CoT prompt and its generation."""
    return settings_hash(kind="cot", lm=lm_settings(lm), signature=solver.signature.signature,
                         instructions=solver.instructions, max_tokens=solver.max_tokens,
                         templates=template_digest("cot"))


def generate_answers(trainset: list, solver, store: TrajectoryStore, num_threads: int = 1) -> tuple[list[dict], int]:
    """`solver`'s CoT record for every task, from the store (kind "cot", key `cot_settings`) where it has one, else
    asked now (threads) and stored at once. Returns (records in trainset order, how many were asked); a task whose
    call failed gets {"error": ...} and nothing stored, so a rerun asks it again."""
    lm = pipeline.program_lm(solver)
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
    fresh = dict(zip(missing, pipeline.run_threads(one, missing, num_threads,
                                                   f"teacher CoT answers ({len(trainset) - len(missing)} stored)")))
    return [fresh[i] if i in fresh else store.get("cot", ids[i], key) for i in range(len(trainset))], len(missing)


def _check_cot(program, role: str) -> None:
    if not (hasattr(program, "chat") and hasattr(program, "task_from") and hasattr(program, "output_name")):
        raise TypeError(
            f"CoTDistill distills chain-of-thought programs: the {role} must be an "
            f"agentdistill.programs.ChainOfThoughtSolver (got {type(program).__name__}); for agents use AgentDistill"
        )
