"""The shipped offline ColBERT checkpoint: assembled once from the packaged head and e5-small, chosen offline at once,
usable for an index; a missing head or an unreachable hub say what to do."""

import json
import time

import pytest

from agentdistill.tools.retrieval import checkpoint as ck


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ck.hub_reachable.cache_clear()
    yield
    ck.hub_reachable.cache_clear()


def test_offline_default_is_the_shipped_checkpoint_without_waiting_for_the_hub(retrieval_home, offline):
    start = time.perf_counter()
    assert not ck.hub_reachable()
    assert time.perf_counter() - start < 0.5  # no connection attempt, no retry loop
    path = ck.resolve_checkpoint(None)
    assert path == str(ck.offline_checkpoint())
    record = json.loads((ck.offline_checkpoint() / "agentdistill_checkpoint.json").read_text())
    assert record["head_version"] == ck.HEAD_VERSION


def test_assembled_checkpoint_carries_the_shipped_head_and_is_reused(retrieval_home, offline):
    import torch
    from safetensors.torch import load_file

    folder = ck.offline_checkpoint()
    stamp = (folder / "agentdistill_checkpoint.json").stat().st_mtime_ns
    assert ck.offline_checkpoint() == folder
    assert (folder / "agentdistill_checkpoint.json").stat().st_mtime_ns == stamp  # not assembled again
    state = {}
    for f in folder.glob("*.safetensors"):
        state.update(load_file(str(f)))
    linear = next(v for k, v in state.items() if k.endswith("linear.weight"))
    assert torch.equal(linear, load_file(str(ck.HEAD_FILE))["linear"])
    assert (folder / "artifact.metadata").is_file()  # a colbert checkpoint, not a plain encoder
    assert ck.resolve_checkpoint(folder) == str(folder.resolve())


def test_an_index_builds_from_the_shipped_checkpoint_offline(retrieval_home, offline, tiny_corpus_path):
    from agentdistill.tools.retrieval import ColBERTSearch

    search = ColBERTSearch.build(tiny_corpus_path, name="tiny-e5", progress=False)
    assert search.manifest["checkpoint"] == str(ck.offline_checkpoint())
    assert search.search("Which airport serves Elko, Nevada?", k=1)[0].title == "Elko Regional Airport"


def test_a_missing_head_names_the_file_and_the_fix(retrieval_home, monkeypatch, tmp_path):
    monkeypatch.setattr(ck, "HEAD_FILE", tmp_path / "gone.safetensors")
    with pytest.raises(ck.CheckpointError, match=r"gone\.safetensors is missing.*train-encoder"):
        ck.offline_checkpoint()


def test_a_hub_id_offline_says_so(offline):
    with pytest.raises(ck.CheckpointError, match="not found locally.*offline"):
        ck.resolve_checkpoint("colbert-ir/colbertv2.0")
