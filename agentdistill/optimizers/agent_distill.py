"""`AgentDistill`: distill a teacher code agent into a small student model (Kang et al. 2025).

    import agentdistill as ad
    distill = ad.optimizers.AgentDistill(metric=ad.benchmarks.answer_correct, first_thought_prefix=True,
                                         sft=ad.optimizers.SFT(epochs=2), num_threads=4, store="runs/math.jsonl")
    small_agent = distill.compile(student, trainset=train, teacher=teacher)      # a NEW program; inputs untouched

compile():
1. first-thought prefixes: the teacher LM writes a chain of thought for each task; its first paragraph seeds the
   teacher agent's first thought (stored, so a rerun does not ask again);
2. teacher trajectories: the teacher CodeAgent runs every task in threads; each finished trajectory is appended to
   the JSONL store at once, keyed by example id + a hash of the settings that shape it (a rerun runs only what is
   missing);
3. filtering: right answer (metric), no parse failure, not out of steps (steps with execution errors stay);
4. SFT data: one chat per kept trajectory, exactly as the student renders it at inference (`Trajectory.messages`,
   from `agentdistill.programs.rendering`), loss on assistant turns only;
5. fine-tuning (TRL + LoRA, see training.py);
6. the compiled student: a copy of the student on a new LM for the trained checkpoint, `_compiled=True`.
MLflow: one parent run per compile with child runs "generation", "training" and (with valset) "evaluation".
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import dspy
from dspy.teleprompt import Teleprompter

from agentdistill.optimizers import pipeline
from agentdistill.optimizers.filtering import FilterReport, filter_trajectories
from agentdistill.optimizers.first_thought import PREFIX_MAX_TOKENS, generate_prefix
from agentdistill.optimizers.store import TrajectoryStore, example_id, settings_hash
from agentdistill.optimizers.training import SFT

PREFIX_METHOD = "cot-first-paragraph/v1"  # bump when the way prefixes are made changes (new store keys)


class AgentDistill(Teleprompter):
    """Agent distillation teleprompter: teacher trajectories -> filter -> SFT -> compiled student.

    Args:
        metric: metric(example, prediction, trace=None) -> bool, grading a trajectory's final answer.
        first_thought_prefix: seed the teacher's first thought with its own CoT's first paragraph.
        sft: fine-tuning settings (`SFT`); `train=` is accepted as an alias.
        num_threads: teacher tasks run concurrently (use many against an OpenAI-compatible server).
        store: JSONL file of teacher outputs (default: `<sft.output_dir or ./agentdistill_runs>/trajectories.jsonl`).
        student_model: the student's base weights (HF folder or hub id) when its LM does not tell (see pipeline).
        track: log the compile to MLflow (parent run + child runs).
        prefix_max_tokens: teacher tokens for a prefix (only the first paragraph is kept).

    Example:
        >>> distill = AgentDistill(metric=answer_correct, sft=SFT(max_steps=100), store="runs/t.jsonl")
        >>> small = distill.compile(student, trainset=train, teacher=teacher)   # doctest: +SKIP
    """

    def __init__(self, metric: Callable, first_thought_prefix: bool = True, sft: SFT | None = None,
                 num_threads: int = 1, store: str | Path | None = None, student_model: str | None = None,
                 track: bool = True, prefix_max_tokens: int = PREFIX_MAX_TOKENS, train: SFT | None = None):
        super().__init__()
        if not callable(metric):
            raise TypeError("AgentDistill(metric=...) needs a callable metric(example, prediction, trace=None)")
        if sft is not None and train is not None:
            raise ValueError("pass the fine-tuning settings once: sft=SFT(...) (train= is an alias)")
        self.metric = metric
        self.first_thought_prefix = first_thought_prefix
        self.sft = sft or train or SFT()
        self.num_threads = num_threads
        out = Path(self.sft.output_dir or "agentdistill_runs")
        self.store_path = Path(store) if store is not None else out / "trajectories.jsonl"
        self.output_dir = out
        self.student_model = student_model
        self.track = track
        self.prefix_max_tokens = prefix_max_tokens
        self.last_report: FilterReport | None = None
        self.last_stats: dict[str, Any] = {}

    # --- keys of the store ----------------------------------------------------------------------------------
    def prefix_settings(self, teacher, teacher_lm) -> str:
        return settings_hash(kind="prefix", method=PREFIX_METHOD, lm=pipeline.lm_name(teacher_lm),
                             lm_kwargs=_lm_kwargs(teacher_lm), signature=teacher.signature.signature,
                             instructions=teacher.instructions, max_tokens=self.prefix_max_tokens)

    def trajectory_settings(self, teacher, teacher_lm) -> str:
        return settings_hash(kind="trajectory", lm=pipeline.lm_name(teacher_lm), lm_kwargs=_lm_kwargs(teacher_lm),
                             signature=teacher.signature.signature, instructions=teacher.instructions,
                             tools=teacher.tool_specs, max_steps=teacher.max_steps, max_tokens=teacher.max_tokens,
                             prefix=self.prefix_settings(teacher, teacher_lm) if self.first_thought_prefix else None)

    # --- steps 1 + 2: teacher outputs --------------------------------------------------------------------------
    def generate(self, trainset: list, teacher: dspy.Module) -> list[dict | None]:
        """Prefixes and trajectories for every task, from the store where it has them; returns trajectory dicts.

        Usable on its own (e.g. to collect trajectories on one machine and train on another).
        """
        _check_agent(teacher, "teacher")
        teacher_lm = pipeline.program_lm(teacher)
        store = TrajectoryStore(self.store_path)
        p_key, t_key = self.prefix_settings(teacher, teacher_lm), self.trajectory_settings(teacher, teacher_lm)
        ids = [example_id(ex) for ex in trainset]
        asked = {"prefix": 0, "trajectory": 0}
        lock = threading.Lock()

        def count(kind: str) -> None:
            with lock:
                asked[kind] += 1

        def one(i: int):
            ex, eid = trainset[i], ids[i]
            task = teacher.task_from(dict(ex.inputs()))
            prefix = None
            if self.first_thought_prefix:
                rec = store.get("prefix", eid, p_key)
                if rec is None:
                    count("prefix")
                    rec = generate_prefix(task, teacher_lm, teacher.signature, teacher.instructions,
                                          self.prefix_max_tokens)
                    store.put("prefix", eid, p_key, rec)
                prefix = rec["prefix"]
            traj = store.get("trajectory", eid, t_key)
            if traj is None:
                count("trajectory")
                pred = teacher(**task, first_thought_prefix=prefix, example_id=eid)
                traj = pred.trajectory.to_dict()
                store.put("trajectory", eid, t_key, traj)  # appended + fsynced now: a crash keeps it
            return traj

        missing = [i for i in range(len(trainset)) if not store.has("trajectory", ids[i], t_key)]
        t0 = time.perf_counter()
        fresh = pipeline.run_threads(one, missing, self.num_threads,
                                     f"teacher trajectories ({len(trainset) - len(missing)} stored)")
        errors = {i: r for i, r in zip(missing, fresh) if isinstance(r, dict) and "error" in r and len(r) == 1}
        out = [errors.get(i) or store.get("trajectory", ids[i], t_key) for i in range(len(trainset))]
        self.last_stats.update(teacher_calls_prefix=asked["prefix"], teacher_calls_trajectory=asked["trajectory"],
                               reused_trajectories=len(trainset) - len(missing), teacher_errors=len(errors),
                               generation_seconds=time.perf_counter() - t0)
        return out

    # --- the whole pipeline ------------------------------------------------------------------------------------
    def compile(self, student: dspy.Module, *, trainset: list, teacher: dspy.Module | dspy.BaseLM,
                valset: list | None = None) -> dspy.Module:
        if not trainset:
            raise ValueError("AgentDistill.compile needs a non-empty trainset of dspy.Example (with_inputs set)")
        _check_agent(student, "student")
        if isinstance(teacher, dspy.BaseLM):  # a bare LM: the teacher is the student's program on that LM
            lm, teacher = teacher, student.deepcopy()
            teacher.set_lm(lm)
        _check_agent(teacher, "teacher")
        teacher_lm, student_lm = pipeline.program_lm(teacher), pipeline.program_lm(student)
        base_model = pipeline.student_model_source(student_lm, self.student_model)
        self.last_stats = {}
        params = {"teacher": pipeline.lm_name(teacher_lm), "student": pipeline.lm_name(student_lm),
                  "student_base_model": base_model, "first_thought_prefix": self.first_thought_prefix,
                  "filter": "metric+no_parse_error+not_out_of_steps", "metric": getattr(self.metric, "__name__", ""),
                  "max_steps": teacher.max_steps, "trainset_size": len(trainset),
                  "store": str(self.store_path), **self.sft.to_params()}
        with pipeline.mlflow_run("AgentDistill", params, enabled=self.track, parent=True):
            with pipeline.mlflow_run("generation", {"teacher": params["teacher"]}, enabled=self.track):
                trajectories = self.generate(trainset, teacher)
                ids = [example_id(ex) for ex in trainset]
                kept, report = filter_trajectories(list(zip(trainset, trajectories)), self.metric, ids=ids)
                self.last_report = report
                summary = report.summary()
                pipeline.log_metrics({"teacher_success_rate": report.success_rate, "kept": report.kept,
                                      "dropped": report.dropped, **{f"generation.{k}": v for k, v in
                                                                   self.last_stats.items()}}, self.track)
            pipeline.log_metrics({"teacher_success_rate": report.success_rate, "trajectories": report.total,
                                  "kept_trajectories": report.kept}, self.track)
            pipeline.log_json_artifact(summary, "filter_report.json", self.track)
            pipeline.log_store(self.store_path, self.track)
            if not kept:
                raise RuntimeError(
                    f"AgentDistill: no teacher trajectory passed the filter ({summary['dropped_by']}); "
                    "use a stronger teacher, more tasks, more max_steps, or check the metric"
                )
            chats = [student_chat(student, traj) for _, traj in kept]
            run_dir = self.output_dir / f"student-{self.trajectory_settings(teacher, teacher_lm)}-{_chat_hash(chats)}"
            compiled = pipeline.train_and_compile(
                student, chats, sft=self.sft, base_model=base_model, student_lm=student_lm, run_dir=run_dir,
                metric=self.metric, valset=valset, num_threads=self.num_threads, stats=self.last_stats,
                track=self.track)
        return compiled

    def get_params(self) -> dict[str, Any]:
        return {"first_thought_prefix": self.first_thought_prefix, "num_threads": self.num_threads,
                "store": str(self.store_path), **self.sft.to_params()}


def student_chat(student, traj: dict) -> list[dict]:
    """The SFT chat of one teacher trajectory, rendered as the STUDENT sees it at inference (its own system
    prompt and tools; the teacher's steps and observations), by the programs' one renderer."""
    from agentdistill.programs import Trajectory
    from agentdistill.programs.rendering import trajectory_to_chat

    t = Trajectory.from_dict(traj)
    t.instructions, t.tools = student.instructions, student.tool_specs
    return trajectory_to_chat(t)


def _lm_kwargs(lm) -> dict:
    return {k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k in {"temperature", "top_p", "max_tokens"}}


def _chat_hash(chats) -> str:
    return settings_hash(chats=chats)[:8]


def _check_agent(program, role: str) -> None:
    if not (hasattr(program, "run") and hasattr(program, "task_from") and hasattr(program, "tool_specs")):
        raise TypeError(
            f"AgentDistill distills code agents: the {role} must be an agentdistill.programs.CodeAgent "
            f"(got {type(program).__name__}); for chain-of-thought programs use CoTDistill"
        )
