"""The SFT config and the TRL training entry point on a few chats of the real SmolLM2-135M student."""

import json

import pytest

from agentdistill.optimizers.sft_data import build_dataset
from agentdistill.optimizers.training import SFT, build_trainer, main, read_rows, train, write_rows

CHATS = [[{"role": "system", "content": "Solve with python."},
          {"role": "user", "content": f"Question: What is {i} + {i}?"},
          {"role": "assistant", "content": f"Thought: add.\n\n```python\nfinal_answer({2 * i})\n```"}]
         for i in range(4)]


def test_defaults_are_the_papers_and_bad_settings_are_refused(tmp_path):
    s = SFT()
    assert (s.lora_r, s.lora_alpha, s.lora_dropout, s.target_modules, s.learning_rate, s.epochs) == (
        64, 128, 0.05, "all-linear", 2e-4, 2.0)
    assert s.report_to == "mlflow" and not s.full_finetune
    with pytest.raises(ValueError, match="unknown SFT setting"):
        SFT.from_dict({"lora_rank": 8})
    with pytest.raises(ValueError, match="lora_r"):
        SFT(lora_r=0)
    cfg = tmp_path / "sft.toml"
    cfg.write_text("[sft]\nlora_r = 16\nmax_steps = 3\npacking = true\n")
    assert SFT.from_file(cfg) == SFT(lora_r=16, max_steps=3, packing=True)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_trainer_gets_our_gradient_checkpointing_setting(tmp_path, smollm2_path, smollm2_tokenizer, checkpointing):
    # TRL's SFTConfig turns gradient checkpointing on by default (a third more compute per step); ours is off
    rows = build_dataset(CHATS, smollm2_tokenizer)
    sft = SFT(max_steps=1, lora_r=4, lora_alpha=8, report_to="none", gradient_checkpointing=checkpointing)
    trainer = build_trainer(sft, smollm2_path, rows, tmp_path / "run")
    assert trainer.args.gradient_checkpointing is checkpointing
    assert SFT().gradient_checkpointing is False


def test_the_cpu_loss_equals_trls_fused_loss(tmp_path, smollm2_path, smollm2_tokenizer):
    # on CPU the trainer uses the model's own cross-entropy (faster); it must be TRL's loss, mask included
    import torch

    rows = build_dataset(CHATS, smollm2_tokenizer)
    plain = build_trainer(SFT(lora_r=4, lora_alpha=8, lora_dropout=0.0, per_device_batch_size=4, report_to="none"),
                          smollm2_path, rows, tmp_path / "plain")
    fused = build_trainer(SFT(lora_r=4, lora_alpha=8, lora_dropout=0.0, per_device_batch_size=4, report_to="none",
                              fused_lm_head=True), smollm2_path, rows, tmp_path / "fused")
    assert type(plain).__name__ == "PlainLossSFTTrainer" and type(fused).__name__ == "SFTTrainer"
    batch = next(iter(plain.get_train_dataloader()))
    assert (batch["labels"] != -100).sum() < batch["attention_mask"].sum()  # prompts are masked out
    with torch.no_grad():
        for n in (None, torch.tensor(50)):  # per-batch mean, and sum / tokens across accumulated batches
            a = plain.compute_loss(plain.model, dict(batch), num_items_in_batch=n)
            b = fused.compute_loss(plain.model, dict(batch), num_items_in_batch=n)
            assert a.item() == pytest.approx(b.item(), rel=1e-4)
    assert 0 < plain._metrics["train"]["mean_token_accuracy"][-1] <= 1


@pytest.mark.slow  # two short trainings of SmolLM2 + a 540 MB merged save (~30-90 s on 2 shared cores)
def test_train_merges_and_resumes_from_the_last_checkpoint(tmp_path, smollm2_path, smollm2_tokenizer):
    rows = build_dataset(CHATS, smollm2_tokenizer)
    sft = SFT(max_steps=1, lora_r=4, lora_alpha=8, per_device_batch_size=2, report_to="none", save_steps=1,
              warmup_ratio=0.0)
    out = train(sft, smollm2_path, rows, tmp_path / "run")
    assert out["global_step"] == 1 and out["resumed_from"] is None and out["n_examples"] == 4
    model_dir = out["model_dir"]
    assert (model_dir / "model.safetensors").exists() and (model_dir / "tokenizer.json").exists()
    assert not (model_dir / "adapter_config.json").exists()  # merged: a plain HF folder
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "train_log.json").read_text()) if "loss" in h]
    assert len(losses) == 1 and losses[0] > 0

    # a second run with more steps continues from checkpoint-1 instead of starting over
    sft2 = SFT(**{**sft.__dict__, "max_steps": 2, "merge": False})
    out2 = train(sft2, smollm2_path, rows, tmp_path / "run")
    assert out2["resumed_from"].endswith("checkpoint-1") and out2["global_step"] == 2
    assert (out2["model_dir"] / "adapter_config.json").exists()  # merge=False keeps the adapter


def test_entry_point_reads_rows_and_overrides(tmp_path, smollm2_tokenizer):
    rows = build_dataset(CHATS, smollm2_tokenizer)
    write_rows(rows, tmp_path / "rows.jsonl")
    assert read_rows(tmp_path / "rows.jsonl") == [{"input_ids": r["input_ids"],
                                                   "assistant_masks": r["assistant_masks"]} for r in rows]
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "rows.jsonl"), "--model", "x", "--output-dir", str(tmp_path), "--set", "oops"])
