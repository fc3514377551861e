"""Shipped models: GGUF location/assembly with the recorded sha256, one-time conversion, concurrency safety."""

import hashlib
import threading
import time

import pytest

from agentdistill.lm import models
from agentdistill.lm.models import SHIPPED, gguf_path, resolve_model_path


def test_registry_names_and_licences():
    assert set(SHIPPED) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
    assert all(m.license == "Apache-2.0" and len(m.sha256) == 64 for m in SHIPPED.values())


def test_smollm2_gguf_ships_in_its_package():
    path = gguf_path("smollm2-135m-instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size == 98_362_432
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    assert h == SHIPPED["smollm2-135m-instruct"].sha256


def test_qwen_chunks_assemble_once_into_a_verified_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    path = gguf_path("qwen2.5-coder-0.5b-instruct")  # assembles the six chunks and checks the sha256
    assert path.parent == tmp_path / "models" / "gguf" and path.stat().st_size == 491_400_064
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert gguf_path("qwen2.5-coder-0.5b-instruct") == path and path.stat().st_mtime_ns == mtime  # not redone


def test_the_big_teacher_assembles_from_22_chunks_with_the_pinned_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    path = gguf_path("qwen2.5-coder-1.5b-instruct")  # 22 chunk packages, sha256 checked while writing
    assert path.stat().st_size == 1_117_320_768
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    name = fields["general.name"]
    assert bytes(name.parts[name.data[0]]).decode() == "Qwen2.5 Coder 1.5B Instruct GGUF"
    blocks = fields["qwen2.block_count"]
    assert int(blocks.parts[blocks.data[0]][0]) == 28


def test_conversion_cache_is_reused(monkeypatch):
    first = resolve_model_path("smollm2-135m-instruct")  # converts on a fresh machine, else already converted
    assert (first / "config.json").is_file() and (first / models.DONE_MARKER).is_file()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(models, "_gguf_to_hf", no_conversion)
    assert resolve_model_path("smollm2-135m-instruct") == first


def test_concurrent_first_use_converts_once(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    calls = []

    def slow_build(model, source, tmp):  # stands in for the 20 s dequantization; the locking is what is tested
        calls.append(model.name)
        time.sleep(0.3)
        (tmp / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_gguf_to_hf", slow_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model_path("smollm2-135m-instruct")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["smollm2-135m-instruct"]
    assert len(set(results)) == 1 and (results[0] / "config.json").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name] == []  # no temp folders left


def test_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))

    def broken(model, source, tmp):
        (tmp / "half-written").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_gguf_to_hf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        resolve_model_path("smollm2-135m-instruct")
    assert not models.is_converted("smollm2-135m-instruct")
    left = [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # neither a target folder nor a temp folder


def test_resolve_other_inputs(tmp_path):
    assert resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"  # hub id: transformers'
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_path(tmp_path) == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        resolve_model_path(tmp_path.parent)
    with pytest.raises(ValueError, match="not a shipped model"):
        resolve_model_path("smollm3")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        resolve_model_path("./missing-folder")


@pytest.mark.slow
def test_real_conversion_in_a_fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    path = resolve_model_path("smollm2-135m-instruct")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
