"""`DistillTeleprompter`: the one compile() of every distillation - teacher outputs -> filter -> chats -> train ->
the compiled student. `AgentDistill` and `CoTDistill` are its two program strategies: what the teacher writes
(trajectories, CoT answers), how it is filtered, and how a kept record becomes the student's chat.

    class MyDistill(DistillTeleprompter):
        name, protocol, other = "MyDistill", DistillableAgent, "CoTDistill"
        def generate(self, trainset, teacher): ...           # one record per task (or {"error": ...})
        def filter(self, trainset, records, program): ...    # (kept [(example, record)], FilterReport)
        def chats(self, program, kept): ...                  # one SFT chat per kept record
        def run_name(self, teacher, teacher_lm, chats): ...  # the training folder's name (unique per setting)

MLflow: one parent run per compile (an active run is reused) with child runs "generation", "training" and, with a
valset, "evaluation"; the metric names are listed in agentdistill.tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import dspy
from dspy.teleprompt import Teleprompter

from agentdistill import tracking
from agentdistill.optimizers import finetune
from agentdistill.optimizers.filtering import FilterReport
from agentdistill.optimizers.store import example_id
from agentdistill.optimizers.training import SFT
from agentdistill.programs.protocols import check_program, lm_name, program_lm


class DistillTeleprompter(Teleprompter):
    """The shared skeleton; subclasses give the strategy (see the module docstring).

    Args:
        metric: metric(example, prediction, trace=None) -> bool, on the prediction the student returns.
        sft: fine-tuning settings (`SFT`); `train=` is accepted as an alias.
        num_threads: teacher tasks run concurrently (use many against an OpenAI-compatible server).
        store: JSONL file of teacher outputs (default: `<sft.output_dir or ./agentdistill_runs>/trajectories.jsonl`).
        student_model: the student's base weights (HF folder or hub id) when its LM does not tell (see finetune.student_model_source).
        track: log the compile to MLflow (parent run + child runs).
        backend: the engine of the compiled student: None (default) llama.cpp on CPU, the checkpoint exported to
            GGUF (transformers where it cannot be exported, and on GPUs), or "llama.cpp" / "transformers".
    """

    name = "DistillTeleprompter"
    protocol: type = object  # what the student and teacher must implement (agentdistill.programs.protocols)
    other = ""  # the teleprompter for the other kind of program, named in the TypeError
    record, records = "record", "records"  # what the teacher writes (messages; metric names: kept_<records>)
    nothing_kept_hint = "use a stronger teacher or more tasks, or check the metric"

    def __init__(self, metric: Callable, sft: SFT | None = None, num_threads: int = 1,
                 store: str | Path | None = None, student_model: str | None = None, track: bool = True,
                 train: SFT | None = None, backend: str | None = None):
        super().__init__()
        if not callable(metric):
            raise TypeError(f"{self.name}(metric=...) needs a callable metric(example, prediction, trace=None)")
        if sft is not None and train is not None:
            raise ValueError("pass the fine-tuning settings once: sft=SFT(...) (train= is an alias)")
        self.metric = metric
        self.sft = sft or train or SFT()
        self.num_threads = num_threads
        self.output_dir = Path(self.sft.output_dir or "agentdistill_runs")
        self.store_path = Path(store) if store is not None else self.output_dir / "trajectories.jsonl"
        self.student_model = student_model
        self.track = track
        self.backend = finetune.check_backend(backend)
        self.last_report: FilterReport | None = None
        self.last_stats: dict[str, Any] = {}

    # --- the strategy -------------------------------------------------------------------------------------------
    def generate(self, trainset: list, teacher: dspy.Module) -> list:
        """The teacher's record of every task (from the store where it has one), {"error": ...} where it failed."""
        raise NotImplementedError

    def filter(self, trainset: list, records: list, program: dspy.Module) -> tuple[list, FilterReport]:
        """(kept [(example, record)], report), graded on `program`'s predictions (the student as it is run)."""
        raise NotImplementedError

    def chats(self, program: dspy.Module, kept: list) -> list[list[dict]]:
        """One SFT chat per kept record, rendered as `program` renders its own conversations."""
        raise NotImplementedError

    def run_name(self, teacher, teacher_lm, chats: list) -> str:
        """The training folder's base name (finetune.run_folder adds the training settings' key)."""
        raise NotImplementedError

    def prepared_student(self, student: dspy.Module, teacher: dspy.Module) -> dspy.Module:
        """The student as it is trained and run (default: as given; AgentDistill sets its prompt on a copy)."""
        return student

    def run_params(self, student, teacher) -> dict:
        """Strategy settings logged on the parent run."""
        return {}

    # --- the skeleton -------------------------------------------------------------------------------------------
    def check(self, program, role: str) -> None:
        check_program(program, self.protocol, role, self.name, self.other)

    def compile(self, student: dspy.Module, *, trainset: list, teacher: dspy.Module | dspy.BaseLM,
                valset: list | None = None) -> dspy.Module:
        """A NEW program: the student fine-tuned on the teacher's kept outputs (student and teacher untouched).

        `teacher` may be a bare LM: the teacher is then the student's program on that LM.
        """
        if not trainset:
            raise ValueError(f"{self.name}.compile needs a non-empty trainset of dspy.Example (with_inputs set)")
        self.check(student, "student")
        if isinstance(teacher, dspy.BaseLM):
            lm, teacher = teacher, student.deepcopy()
            teacher.set_lm(lm)
        self.check(teacher, "teacher")
        teacher_lm, student_lm = program_lm(teacher), program_lm(student)
        base_model = finetune.student_model_source(student_lm, self.student_model)
        program = self.prepared_student(student, teacher)
        self.last_stats = {}
        params = {"teacher": lm_name(teacher_lm), "student": lm_name(student_lm),
                  "student_base_model": base_model, "metric": getattr(self.metric, "__name__", ""),
                  "trainset_size": len(trainset), "store": str(self.store_path),
                  **self.run_params(student, teacher), **self.sft.to_params()}
        with tracking.compile_run(self.name, params, enabled=self.track, parent=True):
            with tracking.compile_run("generation", {"teacher": params["teacher"]}, enabled=self.track):
                records = self.generate(trainset, teacher)
                kept, report = self.filter(trainset, records, program)
                self.last_report = report
                tracking.log_metrics({"teacher_success_rate": report.success_rate, "kept": report.kept,
                                      "dropped": report.dropped, **{f"generation.{k}": v for k, v in
                                                                   self.last_stats.items()}}, enabled=self.track)
            tracking.log_metrics({"teacher_success_rate": report.success_rate, self.records: report.total,
                                  f"kept_{self.records}": report.kept}, enabled=self.track)
            tracking.log_artifact(self.store_path, enabled=self.track)
            if not kept:
                tracking.log_json_artifact(report.summary(), "filter_report.json", self.track)
                raise RuntimeError(f"{self.name}: no teacher {self.record} passed the filter "
                                   f"({report.why_nothing_kept()}); {self.nothing_kept_hint}")
            chats = self.chats(program, kept)
            compiled = finetune.train_and_compile(
                program, chats, sft=self.sft, base_model=base_model, student_lm=student_lm,
                run_dir=self.output_dir / self.run_name(teacher, teacher_lm, chats), metric=self.metric,
                valset=valset, num_threads=self.num_threads, stats=self.last_stats, track=self.track,
                report=report, backend=self.backend)
            # after training: the report then holds what training found too (chats over max_length: `truncated`)
            tracking.log_json_artifact(report.summary(), "filter_report.json", self.track)
        return compiled

    def get_params(self) -> dict[str, Any]:
        return {"num_threads": self.num_threads, "store": str(self.store_path), **self.sft.to_params()}


def example_ids(trainset: list) -> list[str]:
    return [example_id(ex) for ex in trainset]
