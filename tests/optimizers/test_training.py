"""The SFT config and the TRL training entry point on a few chats of the real SmolLM2-135M student."""

import json
import warnings

import pytest

from agentdistill.optimizers.sft_data import build_dataset
from agentdistill.optimizers.training import SFT, build_trainer, main, read_rows, run_settings, train, write_rows

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
    with pytest.raises(TypeError, match=r"SFT.lora_r must be an integer, got '8' \(a string\); write lora_r=8"):
        SFT(lora_r="8")
    with pytest.raises(TypeError, match="SFT.learning_rate must be a number, got '2e-4'"):
        SFT(learning_rate="2e-4")
    # TRL / PEFT spellings get our name
    with pytest.raises(ValueError, match="unknown SFT setting 'num_train_epochs'; did you mean 'epochs'"):
        SFT.from_dict({"num_train_epochs": 2})
    with pytest.raises(ValueError, match="unknown SFT setting 'r'; did you mean 'lora_r'"):
        SFT.from_dict({"r": 8})
    cfg = tmp_path / "sft.toml"
    cfg.write_text("[sft]\nlora_r = 16\nmax_steps = 3\npacking = true\n")
    assert SFT.from_file(cfg) == SFT(lora_r=16, max_steps=3, packing=True)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_trainer_gets_our_gradient_checkpointing_setting(tmp_path, smollm2_path, smollm2_tokenizer, checkpointing):
    # TRL's SFTConfig turns gradient checkpointing on by default (a third more compute per step); ours is off
    rows = build_dataset(CHATS, smollm2_tokenizer)
    sft = SFT(max_steps=1, lora_r=4, lora_alpha=8, report_to="none", gradient_checkpointing=checkpointing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # transformers 5 deprecates the old name: ours uses the new
        trainer = build_trainer(sft, smollm2_path, rows, tmp_path / "run")
    assert trainer.args.activation_checkpointing is checkpointing
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


class _StopAfter:
    """A trainer callback that ends training after `step` optimizer steps, as a killed job would."""

    def __init__(self, step):
        from transformers import TrainerCallback

        outer = self

        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= outer.step:
                    control.should_training_stop = True

        self.step, self.callback = step, Stop()


@pytest.mark.slow  # two short trainings of SmolLM2 (~30-90 s on 2 shared cores)
@pytest.mark.ci  # CI runs this real compile / resume too (.ci/run)
def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, smollm2_path, smollm2_tokenizer):
    rows = build_dataset(CHATS, smollm2_tokenizer)
    sft = SFT(max_steps=2, lora_r=4, lora_alpha=8, per_device_batch_size=2, report_to="none", save_steps=1,
              merge=False)
    out = train(sft, smollm2_path, rows, tmp_path / "run", callbacks=[_StopAfter(1).callback])  # killed at step 1
    assert out["global_step"] == 1 and out["resumed_from"] is None and out["n_examples"] == 4
    assert (out["model_dir"] / "adapter_config.json").exists()  # merge=False keeps the adapter
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "train_log.json").read_text()) if "loss" in h]
    assert len(losses) == 1 and losses[0] > 0
    assert json.loads((tmp_path / "run" / "run_settings.json").read_text()) == run_settings(sft, smollm2_path, rows)

    # the same run started again continues from checkpoint-1 instead of starting over
    out2 = train(sft, smollm2_path, rows, tmp_path / "run")
    assert out2["resumed_from"].endswith("checkpoint-1") and out2["global_step"] == 2
    steps = [h["step"] for h in json.loads((tmp_path / "run" / "train_log.json").read_text()) if "loss" in h]
    assert steps == [1, 2]


def test_resume_refuses_a_folder_trained_with_other_settings(tmp_path, smollm2_path, smollm2_tokenizer):
    # resuming another setting's checkpoint returns weights that belong to neither: refused, with the way out
    rows = build_dataset(CHATS, smollm2_tokenizer)
    sft = SFT(max_steps=1, lora_r=4, lora_alpha=8, report_to="none")
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(ValueError, match="no run_settings.json.*resume=False"):
        train(sft, smollm2_path, rows, run)
    recorded = run_settings(SFT(max_steps=1, lora_r=4, lora_alpha=8, learning_rate=5e-3), smollm2_path, rows)
    (run / "run_settings.json").write_text(json.dumps(recorded))
    with pytest.raises(ValueError, match="learning_rate.*resume=False"):
        train(sft, smollm2_path, rows, run)
    # settings that do not shape the weights (logging, checkpoint cadence, where to report) are not compared
    assert run_settings(SFT(save_steps=7, logging_steps=3, report_to="none", resume=False, output_dir="x"),
                        smollm2_path, rows) == run_settings(SFT(), smollm2_path, rows)


def test_a_run_resumes_its_own_settings_when_one_is_a_tuple(tmp_path, smollm2_path, smollm2_tokenizer):
    # run_settings.json holds JSON (lists); the settings of the same SFT hold tuples: they are the same settings
    from agentdistill.optimizers.training import _check_resumable

    rows = build_dataset(CHATS, smollm2_tokenizer)
    settings = run_settings(SFT(target_modules=("q_proj", "v_proj")), smollm2_path, rows)
    (tmp_path / "run_settings.json").write_text(json.dumps(settings))
    _check_resumable(tmp_path, settings)  # no error


def test_rows_longer_than_max_length_are_refused_not_cut(smollm2_path, smollm2_tokenizer, tmp_path):
    rows = build_dataset(CHATS, smollm2_tokenizer)
    longest = max(len(r["input_ids"]) for r in rows)
    with pytest.raises(ValueError, match=f"max_length=10.*{longest}"):
        build_trainer(SFT(max_length=10, report_to="none"), smollm2_path, rows, tmp_path / "run")


def test_short_runs_train_without_warmup_long_ones_keep_it(tmp_path, smollm2_path, smollm2_tokenizer, caplog):
    # warmup_ratio=0.03 rounds up to one warmup step, at learning rate 0: a 1-step run would not change the model
    rows = build_dataset(CHATS, smollm2_tokenizer)
    with caplog.at_level("WARNING", logger="agentdistill.optimizers.training"):
        trainer = build_trainer(SFT(max_steps=1, warmup_ratio=0.03, report_to="none"), smollm2_path, rows,
                                  tmp_path / "short")
    assert trainer.args.warmup_steps == 0
    assert [r.getMessage() for r in caplog.records if "warmup" in r.getMessage()] == [
        "warmup_ratio=0.03 of a 1-step run is under one step: training without warmup"]
    long = build_trainer(SFT(max_steps=100, warmup_ratio=0.03, report_to="none"), smollm2_path, rows, tmp_path / "long")
    assert long.args.warmup_steps == 3
    by_epochs = build_trainer(SFT(epochs=2, per_device_batch_size=2, warmup_ratio=0.03, report_to="none"), smollm2_path, rows,
                              tmp_path / "epochs")
    assert by_epochs.args.warmup_steps == 0  # 4 chats / 2 per batch * 2 epochs = 4 steps


@pytest.mark.slow  # one optimizer step of SmolLM2 with LoRA r=64 (~20-40 s on 2 shared cores)
def test_a_one_step_run_with_a_warmup_ratio_changes_the_weights(tmp_path, smollm2_path, smollm2_tokenizer):
    trainer = build_trainer(SFT(max_steps=1, warmup_ratio=0.03, report_to="none"), smollm2_path, build_dataset(CHATS, smollm2_tokenizer),
                            tmp_path / "run")
    trainer.train()
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA's B starts at zero: nonzero = trained


def test_entry_point_reads_rows_and_overrides(tmp_path, smollm2_tokenizer):
    rows = build_dataset(CHATS, smollm2_tokenizer)
    write_rows(rows, tmp_path / "rows.jsonl")
    assert read_rows(tmp_path / "rows.jsonl") == [{"input_ids": r["input_ids"],
                                                   "assistant_masks": r["assistant_masks"]} for r in rows]
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path / "rows.jsonl"), "--model", "x", "--output-dir", str(tmp_path), "--set", "oops"])
