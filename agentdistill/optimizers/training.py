"""Supervised fine-tuning of the student on tokenized chats: TRL `SFTTrainer` + peft LoRA (or full fine-tuning).

One config dataclass (`SFT`, defaults of Kang et al. 2025: LoRA r=64, alpha=128, dropout 0.05 on all linear
layers, lr 2e-4 with linear decay and no warmup, 2 epochs) and one entry point that runs on one CPU/GPU and, unchanged, on many GPUs:

    python -m agentdistill.optimizers.training --data sft.jsonl --model /path/to/hf_model --output-dir out/
    accelerate launch -m agentdistill.optimizers.training --data sft.jsonl --model ... --output-dir out/
    # add --config sft.toml (keys = SFT fields) and/or --set lora_r=16 --set max_steps=200

`sft.jsonl` holds rows {"input_ids": [...], "assistant_masks": [...]} (see `sft_data.py`). Checkpoints go to
`<output_dir>/checkpoints` every `save_steps`; a rerun with `resume=True` continues from the last one, only if
`<output_dir>/run_settings.json` (written at the start: the weight-shaping settings, the base model's fingerprint,
a hash of the rows) matches the rerun's, so a checkpoint of other settings is never resumed. The result is
`<output_dir>/model`: the LoRA adapter merged into the base weights (a plain HF folder any engine loads), plus the
tokenizer. Loss and learning rate are logged to MLflow (`report_to="mlflow"`).

Warmup is `warmup_ratio` of the total steps, rounded down: a run of fewer than 1 / warmup_ratio steps (up to 33 at
warmup_ratio=0.03) trains without warmup, since its one warmup step would run at learning rate 0 and, in a 1-step
run, leave the model as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)
# settings that change how a run is logged, saved or started, never the weights it ends with
NOT_WEIGHT_SETTINGS = frozenset({"output_dir", "report_to", "logging_steps", "save_steps", "save_total_limit",
                                 "resume"})


@dataclass
class SFT:
    """Fine-tuning settings (one dataclass, usable from Python, TOML/YAML files and the command line).

    Example:
        >>> SFT(lora_r=16, max_steps=50, output_dir="runs/student")
    """

    full_finetune: bool = False  # False: LoRA adapter (merged after training); True: update every weight
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int | None = 2048  # tokens per chat; a longer chat is dropped, never cut (sft_data.py)
    packing: bool = False  # pack chats into rows of max_length (BFD, padding-free): no padding at all
    group_by_length: bool = True  # else batch chats of similar length together: little padding
    lr_scheduler_type: str = "linear"  # the paper's (TRL's default): linear decay, no warmup
    warmup_ratio: float = 0.0  # of the total steps, rounded down (a run shorter than 1 / ratio steps: none)
    weight_decay: float = 0.0
    bf16: bool | None = None  # None: bf16 when a CUDA device supports it
    gradient_checkpointing: bool = False
    fused_lm_head: bool | None = None  # TRL's chunked LM head for the loss; None: on GPU only (slower on CPU)
    logging_steps: int = 1
    save_steps: int = 200
    save_total_limit: int = 2
    seed: int = 0
    output_dir: str | None = None  # None: a folder next to the trajectory store / in the working folder
    resume: bool = True  # continue from the last checkpoint in output_dir (refused if run_settings.json differs)
    merge: bool = True  # merge the LoRA adapter into the weights for the compiled checkpoint
    report_to: str | list[str] = "mlflow"

    def __post_init__(self):
        _check_types(self)
        if self.lora_r <= 0 and not self.full_finetune:
            raise ValueError(f"SFT.lora_r must be > 0 (got {self.lora_r}); or set full_finetune=True")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("SFT needs epochs > 0 or max_steps > 0")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("SFT.per_device_batch_size and gradient_accumulation_steps must be >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SFT":
        names = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in names:
                raise ValueError(f"unknown SFT setting {key!r}{suggest_setting(key, names)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SFT":
        """Load from a .toml (optionally under an [sft] table), .yaml/.yml or .json file."""
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            d = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml"}:
            import yaml

            d = yaml.safe_load(text)
        elif path.suffix == ".json":
            d = json.loads(text)
        else:
            raise ValueError(f"SFT config {path}: use a .toml, .yaml or .json file")
        return cls.from_dict(d.get("sft", d))

    def to_params(self) -> dict[str, Any]:
        """Flat settings for MLflow params."""
        return {f"sft.{k}": v for k, v in dataclasses.asdict(self).items()}


# TRL / PEFT / transformers names of our settings: a user coming from TRL writes these first
TRL_NAMES = {"num_train_epochs": "epochs", "r": "lora_r", "lora_rank": "lora_r", "alpha": "lora_alpha",
             "per_device_train_batch_size": "per_device_batch_size", "train_batch_size": "per_device_batch_size",
             "max_seq_length": "max_length", "lr": "learning_rate", "scheduler": "lr_scheduler_type",
             "full_ft": "full_finetune", "save_limit": "save_total_limit"}


def suggest_setting(key: str, names) -> str:
    """"; did you mean 'epochs'?" for a TRL name or a typo of an SFT setting, else the list of settings."""
    import difflib

    close = [TRL_NAMES[key]] if key in TRL_NAMES else difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"


def _check_types(sft: SFT) -> None:
    """SFT(lora_r="8") names the field and the fix (a TypeError from `<=` would not)."""
    import typing

    hints = typing.get_type_hints(SFT)
    for f in dataclasses.fields(sft):
        value, allowed = getattr(sft, f.name), typing.get_args(hints[f.name]) or (hints[f.name],)
        ok = any(a is Any or (a is type(None) and value is None)
                 or (a is float and isinstance(value, (int, float)) and not isinstance(value, bool))
                 or (a is int and isinstance(value, int) and not isinstance(value, bool))
                 or (a in (bool, str) and isinstance(value, a))
                 or (typing.get_origin(a) is list and isinstance(value, (list, tuple))) for a in allowed)
        if not ok:
            kind = " or ".join({int: "an integer", float: "a number", bool: "true/false", str: "a string",
                                type(None): "None"}.get(a, "a list") for a in allowed)
            given = {"str": "string", "int": "integer", "float": "number"}.get(type(value).__name__,
                                                                               type(value).__name__)
            fix = f"; write {f.name}={value}" if isinstance(value, str) and _number(value) else ""
            raise TypeError(f"SFT.{f.name} must be {kind}, got {value!r} (a {given}){fix}")


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _use_bf16(sft: SFT) -> bool:
    import torch

    if sft.bf16 is not None:
        return sft.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def weight_settings(sft: SFT) -> dict[str, Any]:
    """The settings that shape the trained weights (bf16 as this machine resolves it)."""
    d = {k: v for k, v in dataclasses.asdict(sft).items() if k not in NOT_WEIGHT_SETTINGS}
    d["bf16"] = _use_bf16(sft)
    return d


def base_fingerprint(model_path: str | os.PathLike) -> str:
    """A local base model by its content, a hub model by its id."""
    if Path(model_path).exists():
        from agentdistill.lm import fingerprint

        return fingerprint(model_path)
    return f"hub:{model_path}"


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def run_settings(sft: SFT, model_path: str | os.PathLike, rows: list[dict]) -> dict[str, Any]:
    """What a run's weights depend on: recorded as run_settings.json, compared before resuming."""
    return {"sft": weight_settings(sft), "base_fingerprint": base_fingerprint(model_path),
            "rows_sha256": digest([[r["input_ids"], r["assistant_masks"]] for r in rows])}


def _check_resumable(output_dir: Path, settings: dict) -> None:
    """Refuse to resume checkpoints that another setting (or an unknown one) produced."""
    path = output_dir / "run_settings.json"
    if not path.is_file():
        raise ValueError(f"{output_dir} holds checkpoints but no run_settings.json, so they may belong to other "
                         "settings; delete the folder, use another output_dir, or set SFT(resume=False)")
    recorded = json.loads(path.read_text())
    settings = json.loads(json.dumps(settings, default=str))  # as recorded: tuples are lists in JSON
    differ = sorted({k for k in {*recorded.get("sft", {}), *settings["sft"]}
                     if recorded.get("sft", {}).get(k) != settings["sft"].get(k)})
    differ += [k for k in ("base_fingerprint", "rows_sha256") if recorded.get(k) != settings[k]]
    if differ:
        raise ValueError(f"{output_dir} holds checkpoints of other settings (differing: {', '.join(differ)}); "
                         "resuming them would return weights of neither: delete the folder, use another "
                         "output_dir, or set SFT(resume=False)")


def total_steps(sft: SFT, n_rows: int, world_size: int = 1) -> int:
    """Optimizer steps of a run, as transformers' Trainer counts them."""
    if sft.max_steps > 0:
        return sft.max_steps
    batches = math.ceil(n_rows / (sft.per_device_batch_size * world_size))  # per process and epoch
    return math.ceil(sft.epochs * max(math.ceil(batches / sft.gradient_accumulation_steps), 1))


def warmup_steps(sft: SFT, total: int) -> int:
    """warmup_ratio of the run, rounded down: HF rounds up, so a short run's only step would be at lr 0."""
    steps = int(sft.warmup_ratio * total + 1e-9)  # float noise: 0.29 * 100 is 28.999...
    if sft.warmup_ratio > 0 and steps == 0:
        logger.warning("warmup_ratio=%s of a %d-step run is under one step: training without warmup",
                       sft.warmup_ratio, total)
    return steps


def last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def plain_loss_trainer_class():
    """SFTTrainer whose loss is the model's own cross-entropy on the collator's labels (assistant tokens only).

    TRL 1.16 computes the loss through a fused LM head that walks the vocabulary in chunks, for its entropy and
    token-accuracy metrics too: it saves GPU memory and costs CPU time (SmolLM2-135M, LoRA, 915 tokens: forward +
    backward 10.0 s vs 7.1 s on the same batch, measured). Same loss (tested); token accuracy logged, entropy not.
    """
    import torch
    from trl import SFTTrainer

    class PlainLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            keep = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids", "labels") if k in inputs}
            extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
            out = model(**keep, use_cache=False, **extra)  # sum / num_items_in_batch when given, as TRL's loss
            with torch.no_grad():
                labels = keep["labels"][:, 1:]
                mask = labels != -100
                correct = ((out.logits[:, :-1].argmax(-1) == labels) & mask).sum()
                self._metrics["train" if model.training else "eval"]["mean_token_accuracy"].append(
                    (correct / mask.sum().clamp(min=1)).item())
            return (out.loss, out) if return_outputs else out.loss

    return PlainLossSFTTrainer


@contextlib.contextmanager
def _quiet_deprecations():
    """Drop the FutureWarning transformers 5 raises for `model.is_gradient_checkpointing`, which peft and TRL call
    (not our code, nothing to change here): printed once per training run, it was noise in every job's log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def build_trainer(sft: SFT, model_path: str | os.PathLike, rows: list[dict], output_dir: Path, callbacks=()):
    """The TRL SFTTrainer for these rows (pre-tokenized: TRL folds `assistant_masks` into labels)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("no SFT examples: every teacher trajectory was filtered out (see the filter report)")
    longest = max(len(r["input_ids"]) for r in rows)
    if sft.max_length is not None and longest > sft.max_length:  # TRL would cut them, losing their last steps
        raise ValueError(f"{sum(len(r['input_ids']) > sft.max_length for r in rows)} SFT rows are longer than "
                         f"max_length={sft.max_length} (the longest has {longest} tokens); set "
                         f"SFT(max_length={longest}) or drop them (sft_data.build_dataset drops over-long chats)")
    bf16 = _use_bf16(sft)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    peft_config = None
    if not sft.full_finetune:
        peft_config = LoraConfig(
            r=sft.lora_r,
            lora_alpha=sft.lora_alpha,
            lora_dropout=sft.lora_dropout,
            target_modules=sft.target_modules,
            task_type="CAUSAL_LM",
        )
    data = Dataset.from_list([{"input_ids": r["input_ids"], "assistant_masks": r["assistant_masks"]} for r in rows])
    args = SFTConfig(
        output_dir=str(output_dir / "checkpoints"),
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        per_device_train_batch_size=sft.per_device_batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        learning_rate=sft.learning_rate,
        lr_scheduler_type=sft.lr_scheduler_type,
        warmup_steps=0,  # set below from the number of (packed) rows: warmup_steps()
        weight_decay=sft.weight_decay,
        max_length=sft.max_length,
        packing=sft.packing,
        train_sampling_strategy="group_by_length" if sft.group_by_length and not sft.packing else "random",
        bf16=bf16,
        # always passed (TRL's SFTConfig defaults it to True), under transformers 5's name for it: the old one warns
        activation_checkpointing=sft.gradient_checkpointing,
        logging_steps=sft.logging_steps,
        save_strategy="steps",
        save_steps=sft.save_steps,
        save_total_limit=sft.save_total_limit,
        seed=sft.seed,
        report_to=sft.report_to,
        run_name="training",
        disable_tqdm=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    fused = sft.fused_lm_head if sft.fused_lm_head is not None else torch.cuda.is_available()
    trainer_class = SFTTrainer if fused else plain_loss_trainer_class()
    with _quiet_deprecations():
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks),
        )
    # the scheduler reads warmup_steps when training starts; TRL has packed the rows by now
    trainer.args.warmup_steps = warmup_steps(sft, total_steps(sft, len(trainer.train_dataset), args.world_size))
    return trainer


def train(sft: SFT, model_path: str | os.PathLike, rows: list[dict], output_dir: str | os.PathLike | None = None,
          callbacks: Iterable = ()) -> dict[str, Any]:
    """Fine-tune `model_path` on tokenized rows; returns {"model_dir", "train_seconds", "log_history", ...}.

    `model_dir` is the merged checkpoint (LoRA) or the full fine-tuned model, with its tokenizer.
    """
    output_dir = Path(output_dir or sft.output_dir or "sft_output")
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = run_settings(sft, model_path, rows)
    resume_from = last_checkpoint(output_dir / "checkpoints") if sft.resume else None
    if resume_from:
        _check_resumable(output_dir, settings)
    trainer = build_trainer(sft, model_path, rows, output_dir, callbacks)
    if trainer.accelerator.is_main_process:  # before training: an interrupted run's checkpoints are attributable
        stale = output_dir / "checkpoints"
        if not resume_from and last_checkpoint(stale):  # starting over: a later resume must not pick these up
            logger.warning("starting over in %s: removing the checkpoints of an earlier run", output_dir)
            shutil.rmtree(stale)
        (output_dir / "run_settings.json").write_text(json.dumps(settings, indent=1))
    t0 = time.perf_counter()
    with _quiet_deprecations():
        result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - t0
    model_dir = output_dir / "model"
    if trainer.accelerator.is_main_process:  # under accelerate launch only rank 0 writes the result
        model = trainer.accelerator.unwrap_model(trainer.model)
        if not sft.full_finetune and sft.merge:
            model = model.merge_and_unload()
        elif not sft.full_finetune:  # adapter only: the folder holds adapter weights + base reference
            model_dir = output_dir / "adapter"
        model.save_pretrained(model_dir)
        trainer.processing_class.save_pretrained(model_dir)
        (output_dir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    trainer.accelerator.wait_for_everyone()
    n_tokens = sum(len(r["input_ids"]) for r in rows)
    return {
        "model_dir": model_dir,
        "train_seconds": seconds,
        "resumed_from": resume_from,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "log_history": trainer.state.log_history,
        "n_examples": len(rows),
        "n_tokens": n_tokens,
    }


def write_rows(rows: list[dict], path: str | os.PathLike) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"input_ids": r["input_ids"], "assistant_masks": r["assistant_masks"]}) + "\n")


def read_rows(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="JSONL of tokenized rows {input_ids, assistant_masks}")
    p.add_argument("--model", required=True, help="base model: a Hugging Face folder or a shipped model name")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--config", help="SFT settings file (.toml/.yaml/.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one SFT setting")
    a = p.parse_args(argv)
    d = dataclasses.asdict(SFT.from_file(a.config)) if a.config else {}
    for kv in a.set:
        if "=" not in kv:
            p.error(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        d[k] = _parse_value(v)
    sft = SFT.from_dict(d)
    model = a.model
    if not Path(model).exists():  # a shipped model name -> its converted HF folder
        from agentdistill.lm import resolve_model_path

        model = resolve_model_path(model)
    out = train(sft, model, read_rows(a.data), a.output_dir)
    print(json.dumps({k: str(v) for k, v in out.items() if k != "log_history"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
