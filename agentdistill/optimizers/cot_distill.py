"""`CoTDistill`: the paper's baseline - distill the teacher's chain-of-thought answers into the student.

    distill = ad.optimizers.CoTDistill(metric=ad.benchmarks.answer_correct, sft=ad.optimizers.SFT(epochs=2))
    small_cot = distill.compile(student_cot, trainset=train, teacher=teacher_cot)   # ChainOfThoughtSolver programs

Teacher CoT answers (one call per task, stored in the same resumable JSONL store) -> keep the ones the metric
accepts -> SFT on (task, reasoning + "Answer: x") chats rendered exactly as the student's CoT program renders
them -> the compiled student. Same store, training and MLflow tracking as `AgentDistill`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import dspy
from dspy.teleprompt import Teleprompter

from agentdistill.optimizers import pipeline
from agentdistill.optimizers.filtering import FilterReport, filter_answers
from agentdistill.optimizers.store import TrajectoryStore, example_id, settings_hash
from agentdistill.optimizers.training import SFT


class CoTDistill(Teleprompter):
    """CoT distillation teleprompter (baseline of Kang et al. 2025).

    Args:
        metric: metric(example, prediction, trace=None) -> bool on the teacher's answer.
        sft, num_threads, store, student_model, track: as in `AgentDistill`.

    Example:
        >>> small = CoTDistill(metric=answer_correct).compile(student, trainset=train, teacher=teacher)  # doctest: +SKIP
    """

    def __init__(self, metric: Callable, sft: SFT | None = None, num_threads: int = 1,
                 store: str | Path | None = None, student_model: str | None = None, track: bool = True,
                 train: SFT | None = None):
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
        self.last_report: FilterReport | None = None
        self.last_stats: dict[str, Any] = {}

    def answer_settings(self, teacher, teacher_lm) -> str:
        return settings_hash(kind="cot", lm=pipeline.lm_name(teacher_lm),
                             lm_kwargs={k: v for k, v in (getattr(teacher_lm, "kwargs", None) or {}).items()
                                        if k in {"temperature", "top_p", "max_tokens"}},
                             signature=teacher.signature.signature, instructions=teacher.instructions,
                             max_tokens=teacher.max_tokens)

    def generate(self, trainset: list, teacher: dspy.Module) -> list[dict]:
        """The teacher's {"reasoning", "answer", "raw"} for every task (stored ones are not asked again)."""
        _check_cot(teacher, "teacher")
        teacher_lm = pipeline.program_lm(teacher)
        store, key = TrajectoryStore(self.store_path), self.answer_settings(teacher, teacher_lm)
        ids = [example_id(ex) for ex in trainset]

        def one(i: int):
            task = teacher.task_from(dict(trainset[i].inputs()))
            pred = teacher(**task)
            raw = pred.messages[-1]["content"] if pred.messages and pred.messages[-1]["role"] == "assistant" else ""
            rec = {"task": task, "reasoning": pred.reasoning, "answer": pred.get(teacher.output_name),
                   "raw": raw, "parse_error": pred.parse_error}
            store.put("cot", ids[i], key, rec)
            return rec

        missing = [i for i in range(len(trainset)) if not store.has("cot", ids[i], key)]
        t0 = time.perf_counter()
        fresh = dict(zip(missing, pipeline.run_threads(one, missing, self.num_threads, "teacher CoT answers")))
        self.last_stats.update(teacher_calls=len(missing), reused_answers=len(trainset) - len(missing),
                               generation_seconds=time.perf_counter() - t0)
        return [fresh[i] if i in fresh else store.get("cot", ids[i], key) for i in range(len(trainset))]

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
                kept, report = filter_answers(list(zip(trainset, answers)), self.metric, ids=ids)
                self.last_report = report
                pipeline.log_metrics({"teacher_success_rate": report.success_rate, "kept": report.kept}, self.track)
            pipeline.log_metrics({"teacher_success_rate": report.success_rate, "kept_answers": report.kept},
                                 self.track)
            pipeline.log_json_artifact(report.summary(), "filter_report.json", self.track)
            pipeline.log_store(self.store_path, self.track)
            if not kept:
                raise RuntimeError(f"CoTDistill: no teacher answer passed the metric ({report.summary()['reasons']})")
            # rendered by the STUDENT's program: its own instructions, the one CoT renderer
            chats = [student.chat(rec["task"], rec["reasoning"], rec["answer"]) for _, rec in kept]
            run_dir = self.output_dir / f"cot-student-{settings_hash(chats=chats)[:12]}"
            compiled = pipeline.train_and_compile(
                student, chats, sft=self.sft, base_model=base_model, student_lm=student_lm, run_dir=run_dir,
                metric=self.metric, valset=valset, num_threads=self.num_threads, stats=self.last_stats,
                track=self.track)
        return compiled

    def get_params(self) -> dict[str, Any]:
        return {"num_threads": self.num_threads, "store": str(self.store_path), **self.sft.to_params()}


def _check_cot(program, role: str) -> None:
    if not (hasattr(program, "chat") and hasattr(program, "task_from") and hasattr(program, "output_name")):
        raise TypeError(
            f"CoTDistill distills chain-of-thought programs: the {role} must be an "
            f"agentdistill.programs.ChainOfThoughtSolver (got {type(program).__name__}); for agents use AgentDistill"
        )
