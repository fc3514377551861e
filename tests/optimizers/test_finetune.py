"""The second half of every distillation (finetune.train_and_compile, compiled_program): the run folder belongs to
one setting, over-long chats are dropped and counted, and the compiled program keeps the student's engine settings
and a sandbox of its own."""

import json
import logging
from pathlib import Path

import pytest

import agentdistill
from agentdistill.lm import LlamaCppEngine, TransformersEngine
from agentdistill.optimizers import SFT, finetune
from agentdistill.programs import CodeAgent
from tests.programs.scripted import scripted_lm

STEP = "Thought: add.\n```python\nprint({a} + {a})\n```"
FINAL = "Thought: done.\n```python\nfinal_answer({s})\n```"


def chat(a: int, observation: str | None = None) -> list[dict]:
    return [{"role": "system", "content": "Solve with python."},
            {"role": "user", "content": f"Question: What is {a} + {a}?"},
            {"role": "assistant", "content": STEP.format(a=a)},
            {"role": "user", "content": "Observation:\n" + (observation or str(2 * a))},
            {"role": "assistant", "content": FINAL.format(s=2 * a)}]


def test_compiled_program_runs_on_the_students_engine_settings(smollm2_path):
    student = CodeAgent("question -> answer")
    student_lm = agentdistill.local_lm(str(smollm2_path), dtype="bfloat16", threads=2, temperature=0.3,
                                       max_tokens=40, top_k=5)
    student.set_lm(student_lm)
    compiled = finetune.compiled_program(student, smollm2_path, student_lm, backend="transformers")
    engine = compiled.step.lm.engine
    assert isinstance(engine, TransformersEngine) and engine.path == str(smollm2_path)
    assert (engine.dtype, engine.device, engine.threads, engine.max_tokens) == ("bfloat16", "cpu", 2, 40)
    assert compiled.step.lm.kwargs == student_lm.kwargs  # every sampling default, top_k included


@pytest.mark.parametrize("backend", ["transformers", "llama.cpp"])
def test_on_cpu_the_compiled_student_runs_on_llama_cpp_by_default(smollm2_path, backend):
    """The trained folder is exported to GGUF and served by llama.cpp (several times the tokens/s), whichever
    engine the student ran on, with the student's threads and sampling defaults; it answers."""
    student = CodeAgent("question -> answer")
    student_lm = agentdistill.local_lm(str(smollm2_path) if backend == "transformers" else "smollm2-135m-instruct",
                                       backend=backend, threads=2, max_tokens=30)
    student.set_lm(student_lm)
    compiled = finetune.compiled_program(student, smollm2_path, student_lm)
    lm = compiled.step.lm
    assert isinstance(lm.engine, LlamaCppEngine) and lm.engine.gguf.endswith(".gguf")
    assert lm.model.endswith("-llamacpp-q8_0") and (lm.engine.n_threads, lm.engine.max_tokens) == (2, 30)
    assert "5" in lm(messages=[{"role": "user", "content": "What is 2+3?"}], cache=False)[0]


def test_a_checkpoint_llama_cpp_cannot_take_stays_on_transformers(tmp_path, smollm2_path, caplog):
    import shutil

    folder = tmp_path / "from-the-hub"  # a fine-tune with no shipped GGUF behind it: nothing to export from
    shutil.copytree(smollm2_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("_name_or_path", None), config.pop("_model_name_or_path", None)
    (folder / "config.json").write_text(json.dumps(config))
    student = CodeAgent("question -> answer")
    student_lm = agentdistill.local_lm("smollm2-135m-instruct", backend="llama.cpp", threads=2, max_tokens=30)
    student.set_lm(student_lm)
    with caplog.at_level(logging.INFO, logger="agentdistill.optimizers.finetune"):
        compiled = finetune.compiled_program(student, folder, student_lm)
    engine = compiled.step.lm.engine
    assert isinstance(engine, TransformersEngine) and (engine.threads, engine.max_tokens) == (2, 30)
    assert any("shipped GGUF" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="backend must be one of"):
        finetune.compiled_program(student, folder, student_lm, backend="vllm")


def test_the_compiled_program_has_its_own_sandbox(smollm2_path):
    student = CodeAgent("question -> answer", max_steps=3)
    lm, _ = scripted_lm([STEP.format(a=2), FINAL.format(s=4)])
    student.set_lm(lm)
    assert student(question="What is 2 + 2?").answer == "4" # the student's sandbox is running
    compiled = finetune.compiled_program(student, smollm2_path, lm)
    student.close()  # closing the student must not break the compiled program
    compiled.set_lm(scripted_lm([STEP.format(a=3), FINAL.format(s=6)])[0])
    try:
        assert compiled(question="What is 3 + 3?").answer == "6"
        assert compiled.sandbox is not student.sandbox
    finally:
        compiled.close()
        student.close()


def test_run_folders_are_keyed_by_every_setting_that_shapes_the_weights(tmp_path, smollm2_path):
    chats = [chat(1), chat(2)]
    base = finetune.run_folder(tmp_path / "student", chats, SFT(), str(smollm2_path))
    assert base.parent == tmp_path and base.name.startswith("student-")
    changed = [finetune.run_folder(tmp_path / "student", c, s, m) for c, s, m in [
        (chats, SFT(learning_rate=5e-3), str(smollm2_path)),
        (chats, SFT(lora_r=16), str(smollm2_path)),
        (chats, SFT(max_steps=3), str(smollm2_path)),
        (chats, SFT(), "HuggingFaceTB/SmolLM2-135M-Instruct"),  # another base model
        ([chat(1)], SFT(), str(smollm2_path)),
    ]]
    assert len({base, *changed}) == 6
    # how a run is logged, checkpointed or resumed does not change the weights: same folder
    same = SFT(save_steps=5, logging_steps=9, save_total_limit=1, report_to="none", resume=False, output_dir="x")
    assert finetune.run_folder(tmp_path / "student", chats, same, str(smollm2_path)) == base


def test_every_chat_too_long_is_a_clear_error_before_training(tmp_path, smollm2_path):
    student = CodeAgent("question -> answer")
    student_lm = agentdistill.local_lm(str(smollm2_path))
    with pytest.raises(ValueError, match="every SFT chat.*max_length=20"):
        finetune.train_and_compile(student, [chat(1)], sft=SFT(max_length=20, report_to="none"),
                                   base_model=str(smollm2_path), student_lm=student_lm, run_dir=tmp_path / "s",
                                   metric=None, valset=None, num_threads=1, stats={}, track=False)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow  # two 1-step fine-tunes of SmolLM2 with merged saves (~1-3 min on 2 shared cores)
def test_a_changed_setting_trains_a_new_model_that_the_compiled_program_serves(tmp_path, smollm2_path):
    import torch

    class Report:
        truncated = 0

    student = CodeAgent("question -> answer", max_steps=2)
    student_lm = agentdistill.local_lm(str(smollm2_path))
    student.set_lm(student_lm)
    long = chat(5, observation="5 " * 400)  # over max_length: dropped, never cut before its final_answer step
    chats = [chat(1), chat(2), long, chat(3)]
    # with a warmup ratio (HF would round its one warmup step up, at lr 0), a 1-step run must still train
    sft = SFT(max_steps=1, warmup_ratio=0.03, lora_r=4, lora_alpha=8, per_device_batch_size=2, max_length=256,
              learning_rate=1e-3, report_to="none")

    def compile_with(settings, report=None):
        stats = {}
        compiled = finetune.train_and_compile(
            student, chats, sft=settings, base_model=str(smollm2_path), student_lm=student_lm,
            run_dir=tmp_path / "student", metric=None, valset=None, num_threads=1, stats=stats, track=False,
            report=report)
        return compiled, stats

    report = Report()
    first, stats_a = compile_with(sft, report)
    run_a = Path(stats_a["model_dir"]).parent
    assert run_a.parent == tmp_path and run_a.name.startswith("student-")
    assert stats_a["truncated"] == report.truncated == 1 and stats_a["sft_examples"] == 3
    rows = [json.loads(line) for line in open(run_a / "sft_rows.jsonl")]
    tok = first.step.lm.engine.tokenizer
    ends = [tok.decode([t for t, m in zip(r["input_ids"], r["assistant_masks"]) if m]) for r in rows]
    assert len(ends) == 3 and all(e.endswith(FINAL.format(s=2 * a) + "<|im_end|>") for e, a in zip(ends, (1, 2, 3)))
    assert json.loads((run_a / "run_settings.json").read_text())["sft"]["learning_rate"] == 1e-3
    base, a = _weights(smollm2_path), _weights(run_a / "model")
    assert any(not torch.equal(base[k], a[k]) for k in base)  # the 1-step fine-tune changed the model

    second, stats_b = compile_with(SFT(**{**sft.__dict__, "learning_rate": 5e-3}))
    run_b = Path(stats_b["model_dir"]).parent
    assert run_b != run_a and run_b.parent == tmp_path
    steps = [h["step"] for h in json.loads((run_b / "train_log.json").read_text()) if "loss" in h]
    assert steps == [1]  # trained from the base model, not resumed from the other setting's checkpoint
    b = _weights(run_b / "model")
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed
    # the compiled program runs on the new checkpoint
    # the compiled program runs on the new checkpoint: on CPU its GGUF export, served by llama.cpp
    engine = second.step.lm.engine
    assert engine.source == str((run_b / "model").resolve()) and second.step.lm.model != first.step.lm.model
    assert Path(engine.gguf).resolve().is_relative_to((run_b / "model").resolve())
    assert engine.gguf != first.step.lm.engine.gguf


def test_a_sandbox_the_user_passed_in_stays_with_the_compiled_program(smollm2_path):
    from agentdistill.tools.sandbox import Sandbox

    sandbox = Sandbox(output_limit=123)
    student = CodeAgent("question -> answer", max_steps=3, sandbox=sandbox)
    lm, _ = scripted_lm([])
    student.set_lm(lm)
    compiled = finetune.compiled_program(student, smollm2_path, lm)
    try:
        assert compiled.sandbox is sandbox  # its settings are the user's: not rebuilt from the agent's defaults
    finally:
        sandbox.close()


def test_a_dead_tracking_store_stops_a_compile_before_the_teacher_is_asked(tmp_path, monkeypatch):
    import time

    from agentdistill.optimizers import AgentDistill
    from agentdistill.tracking.probe import TrackingStoreError
    from tests.optimizers.fake_teacher import metric, tasks, teacher_lm
    from tests.tracking.store import refused_url

    url = refused_url()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    lm, engine = teacher_lm(())
    teacher, student = CodeAgent("question -> answer", max_steps=2), CodeAgent("question -> answer", max_steps=2)
    teacher.set_lm(lm)
    student.set_lm(scripted_lm([])[0])  # never asked either
    d = AgentDistill(metric=metric, store=tmp_path / "store.jsonl", track=True, student_model="smollm2-135m-instruct",
                     sft=SFT(output_dir=str(tmp_path / "out"), max_steps=1))
    start = time.monotonic()
    with pytest.raises(TrackingStoreError, match=f"MLflow tracking store {url} is not reachable"):
        d.compile(student, trainset=tasks([10]), teacher=teacher)
    assert time.monotonic() - start < 15 and engine.requests == []  # MLflow alone would retry for ~4 minutes

