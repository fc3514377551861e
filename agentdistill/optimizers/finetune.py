"""The second half of every distillation: the student's base weights, fine-tuning on the kept chats (one folder per
setting), the compiled student on its new checkpoint, and its valset score.

    compiled = train_and_compile(student, chats, sft=SFT(), base_model=..., student_lm=lm, run_dir=Path("runs/s"),
                                 metric=answer_correct, valset=None, num_threads=1, stats={}, track=False)

Used by `DistillTeleprompter.compile` (optimizers.teleprompter); not a public API of its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

import dspy

from agentdistill import tracking
from agentdistill.optimizers import sft_data
from agentdistill.optimizers.training import SFT, base_fingerprint, digest, train, weight_settings, write_rows
from agentdistill.programs.protocols import lm_name

logger = logging.getLogger(__name__)


# --- the student's base weights ---------------------------------------------------------------------------------
def student_model_source(lm, explicit: str | os.PathLike | None = None) -> str:
    """A path (or hub id) of the student's weights, to fine-tune: explicit, else found on the student's LM."""
    if explicit is not None:
        return str(explicit)
    engine = getattr(lm, "engine", None) or getattr(lm, "_engine_spec", None)
    for attr in ("model_path", "path", "source", "model_dir", "name_or_path"):
        value = getattr(engine, attr, None)
        if value:
            return str(value)
    model = lm_name(lm)
    if model.startswith("local/"):  # "local/<name>@<checkpoint hash>" of agentdistill.local_lm
        from agentdistill.lm import resolve_model_path

        return str(resolve_model_path(model[len("local/"):].split("@")[0]))
    raise ValueError(
        f"cannot fine-tune the student LM {model!r}: distillation trains the student's own weights, so the student "
        "must run on agentdistill.local_lm(...) or you pass student_model='<HF folder or hub id>' to the optimizer"
    )


# --- training and the compiled student --------------------------------------------------------------------------
def run_folder(run_dir: Path, chats: list[list[dict]], sft: SFT, base_model: str) -> Path:
    """`<run_dir>-<key>`: one folder per training setting, so a run only ever resumes its own checkpoints.

    The key hashes the chats, every SFT setting that shapes the weights (training.weight_settings) and the base
    model's fingerprint (its content for a folder, the id for a hub model).
    """
    key = digest({"chats": chats, "sft": weight_settings(sft), "base_model": base_fingerprint(base_model)})[:12]
    return run_dir.parent / f"{run_dir.name}-{key}"


def finetune(sft: SFT, base_model: str, chats: Iterable[list[dict]], output_dir: Path, track: bool) -> dict:
    """Tokenize the chats with the student's tokenizer, write them, and fine-tune (a 'training' child run).

    A chat longer than sft.max_length is dropped, never cut (sft_data): `out["truncated"]` counts them.
    """
    from transformers import AutoTokenizer

    chats = list(chats)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    rows = sft_data.build_dataset(chats, tokenizer, max_length=sft.max_length)
    dropped = {i for i, _ in rows.dropped}
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "sft_chats.jsonl", "w") as f:  # the chats that are trained
        for chat in (c for i, c in enumerate(chats) if i not in dropped):
            f.write(json.dumps({"messages": chat}, ensure_ascii=False) + "\n")
    # the tokenized rows too: `accelerate launch -m agentdistill.optimizers.training --data <this>` retrains on many GPUs
    write_rows(rows, output_dir / "sft_rows.jsonl")
    sft_settings = sft
    if not track and sft.report_to not in ("none", [], None):
        sft_settings = dataclasses.replace(sft, report_to="none")
    with tracking.compile_run("training", {**sft.to_params(), "sft.base_model": base_model,
                                           "sft.examples": len(rows)}, enabled=track):
        out = train(sft_settings, base_model, rows, output_dir)
        out["truncated"] = len(dropped)
        tracking.log_metrics({"train_seconds": out["train_seconds"], "sft_examples": len(rows),
                              "sft_tokens": out["n_tokens"], "truncated": len(dropped),
                              "sft_assistant_tokens": sum(sum(r["assistant_masks"]) for r in rows)}, enabled=track)
        if track:
            import mlflow

            mlflow.log_artifact(str(output_dir / "sft_chats.jsonl"))
            if (output_dir / "train_log.json").exists():
                mlflow.log_artifact(str(output_dir / "train_log.json"))
    return out


def checkpoint_lm(model_dir: Path, student_lm, backend: str | None = None) -> dspy.BaseLM:
    """A dspy.LM on the trained checkpoint with the student's engine settings (threads, dtype, device, n_ctx) and
    sampling defaults; only the weights are new.

    backend: "llama.cpp" (the checkpoint exported to GGUF, agentdistill.lm.export), "transformers", or None: llama.cpp
    on CPU when the checkpoint descends from a shipped GGUF (several times the tokens/s), else transformers (GPUs,
    models llama.cpp cannot run; a GPU user serves the checkpoint with vLLM instead).
    """
    import agentdistill
    from agentdistill.lm import LlamaCppEngine, TransformersEngine, local_engine

    check_backend(backend)
    engine = local_engine(student_lm)
    spec = engine.spec() if engine is not None else {}
    if engine is None:  # a student served elsewhere (student_model= given): the local engine's defaults
        kwargs = {k: v for k, v in (getattr(student_lm, "kwargs", None) or {}).items()
                  if k in {"temperature", "max_tokens", "top_p"} and v is not None}
    else:  # the student's LM already ran on a local engine with these, so they are valid for the new one
        kwargs = {"cache": getattr(student_lm, "cache", True), **student_lm.kwargs}
        kwargs.setdefault("max_tokens", spec["max_tokens"])
    if backend is None:
        backend = "llama.cpp" if _on_cpu(engine) and _exportable(model_dir) else "transformers"
    if backend == "llama.cpp":
        threads = spec.get("n_threads", spec.get("threads"))
        n_ctx = {"n_ctx": spec["n_ctx"]} if "n_ctx" in spec else {}
        return agentdistill.local_lm(str(model_dir), backend="llama.cpp", threads=threads, **n_ctx, **kwargs)
    if isinstance(engine, TransformersEngine):
        return agentdistill.local_lm(str(model_dir), backend="transformers", dtype=spec["dtype"],
                                     device=spec["device"], threads=spec["threads"], **kwargs)
    threads = spec["n_threads"] if isinstance(engine, LlamaCppEngine) else None
    return agentdistill.local_lm(str(model_dir), backend="transformers", threads=threads, **kwargs)


def check_backend(backend: str | None) -> str | None:
    """The compiled student's engine as the teleprompters take it (backend=), or a ValueError naming the choices."""
    from agentdistill.lm.local import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None (llama.cpp on CPU), got {backend!r}")
    return backend


def _on_cpu(engine) -> bool:
    from agentdistill.lm import TransformersEngine

    if isinstance(engine, TransformersEngine):
        return str(engine.device).startswith("cpu")
    if engine is not None:  # llama.cpp
        return True
    import torch

    return not torch.cuda.is_available()


def _exportable(model_dir: Path) -> bool:
    from agentdistill.lm.gguf_base import shipped_base

    found = shipped_base(model_dir) is not None
    if not found:
        logger.info("the trained checkpoint %s does not descend from a shipped GGUF: it runs on transformers",
                    model_dir)
    return found


def compiled_program(student: dspy.Module, model_dir: Path, student_lm, backend: str | None = None) -> dspy.Module:
    """A deep copy of the student whose predictors run on a new LM for the trained checkpoint; demos empty."""
    new_lm = checkpoint_lm(model_dir, student_lm, backend)
    compiled = student.deepcopy()
    for predictor in compiled.predictors():
        predictor.lm = new_lm
        predictor.demos = []
    if hasattr(compiled, "_sandbox_lock") and not getattr(compiled, "_sandbox_given", True):
        # copies share the student's sandbox; the compiled program outlives it (student.close() stops it), so it
        # gets its own, made from the same settings. A sandbox the user passed in stays shared: its settings
        # (isolation, limits) are the user's and would be lost in a rebuilt one.
        compiled._sandbox, compiled._sandbox_lock = None, threading.Lock()
    compiled._compiled = True
    return compiled


def evaluate(program, valset, metric, num_threads: int, track: bool, model_id: str | None = None) -> float:
    """The compiled student's score on the valset (dspy.Evaluate with the user's metric), logged as accuracy/val,
    linked to the logged student model and the valset's questions."""
    with tracking.compile_run("evaluation", {"eval.examples": len(valset)}, enabled=track):
        result = dspy.Evaluate(devset=valset, metric=metric, num_threads=num_threads, display_progress=True,
                               provide_traceback=False)(program)
        score = float(getattr(result, "score", result)) / 100.0
        if track:
            _log_val(score, valset, model_id)
    return score


def _log_val(score: float, valset: list, model_id: str | None) -> None:
    """accuracy/val on the active run, linked to the student's logged model and the valset's questions."""
    rows = [{"id": ex.get("id", i), "question": ex.get("question", ""), "gold": ex.get("answer", "")}
            for i, ex in enumerate(valset)]
    tracking.log_evaluation({tracking.metric_key(tracking.VALSET): score}, {tracking.VALSET: rows}, model_id=model_id)


def train_and_compile(student: dspy.Module, chats: list[list[dict]], *, sft: SFT, base_model: str, student_lm,
                      run_dir: Path, metric, valset, num_threads: int, stats: dict, track: bool,
                      report=None, backend: str | None = None) -> dspy.Module:
    """The second half of every distillation: fine-tune on the chats, put the student on the checkpoint, score it on
    the valset if given, and record what happened in `stats` and MLflow. Both teleprompters end here.

    `run_dir` is a base name: the run trains into `run_folder(run_dir, ...)`, one folder per setting. `report`
    (the filter report), when it has an int `truncated`, gets the number of over-long chats that were dropped.
    `backend`: the compiled student's engine (see checkpoint_lm).
    """
    run_dir = run_folder(Path(run_dir), chats, sft, base_model)
    out = finetune(dataclasses.replace(sft, output_dir=str(run_dir)), base_model, chats, run_dir, track)
    stats.update(train_seconds=out["train_seconds"], train_loss=out["train_loss"], model_dir=str(out["model_dir"]),
                 sft_examples=out["n_examples"], truncated=out["truncated"])
    if report is not None and isinstance(getattr(report, "truncated", None), int):
        report.truncated = out["truncated"]
    compiled = compiled_program(student, out["model_dir"], student_lm, backend)
    stats["student_model"] = compiled.predictors()[0].lm.model  # "...-llamacpp-q8_0": which engine runs it
    if track:  # the checkpoint as a logged model of the compile run: its evaluations link to it
        stats["model_id"] = tracking.log_student_model(compiled, {
            "checkpoint": str(out["model_dir"]), "base_model": base_model, "student_model": stats["student_model"],
            "sft_examples": out["n_examples"]})
    if valset:
        stats["val_accuracy"] = evaluate(compiled, valset, metric, num_threads, track, stats.get("model_id"))
    tracking.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float)) and k != "val_accuracy"},
                         enabled=track)
    if track and valset:  # the parent run's copy of the score, linked as the evaluation run's is
        _log_val(stats["val_accuracy"], valset, stats.get("model_id"))
    return compiled
