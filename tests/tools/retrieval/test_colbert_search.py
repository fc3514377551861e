"""ColBERTSearch on a 50-passage index: build, reuse, search, the tool, errors, and the colbert-ai shim."""

import inspect
import json

import pytest

from agentdistill.tools.retrieval import ColBERTSearch, CorpusError, IndexNotFoundError, read_corpus


def test_missing_index_says_how_to_build_one(retrieval_home):
    with pytest.raises(IndexNotFoundError, match=r"no retrieval index 'no-such-index'.*agentdistill index build"):
        ColBERTSearch("no-such-index")


def test_needs_exactly_one_of_index_or_url():
    with pytest.raises(ValueError, match="exactly one"):
        ColBERTSearch()


def test_build_rejects_empty_corpus_and_passage_without_text(retrieval_home, base_checkpoint, tmp_path):
    with pytest.raises(CorpusError, match="empty"):
        ColBERTSearch.build([], name="empty", checkpoint=base_checkpoint, progress=False)
    with pytest.raises(CorpusError, match="has no text"):
        ColBERTSearch.build([{"id": "a", "text": "x"}, {"id": "b", "title": "T"}], name="bad",
                            checkpoint=base_checkpoint, progress=False)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(CorpusError, match="empty"):
        ColBERTSearch.build(empty, name="empty", checkpoint=base_checkpoint, progress=False)
    assert not (retrieval_home / "indexes" / "empty").exists()


def test_build_writes_a_colbert_index_with_manifest(tiny_index, tiny_corpus_path):
    m = tiny_index.manifest
    assert m["n_passages"] == 50 and m["nbits"] == 2 and m["num_embeddings"] > 50 * 20
    for name in ("metadata.json", "ivf.pid.pt", "centroids.pt", "0.codes.pt", "0.residuals.pt", "passages.jsonl"):
        assert (tiny_index.path / name).exists(), name
    assert read_corpus(tiny_index.path / "passages.jsonl") == read_corpus(tiny_corpus_path)


def test_search_returns_ranked_passages_from_the_corpus(tiny_index, tiny_corpus_path):
    by_id = {p.id: p for p in read_corpus(tiny_corpus_path)}
    hits = tiny_index.search("Which university has its main campus in Lawrence, Kansas?", k=7)
    assert len(hits) == 7 and [h.rank for h in hits] == list(range(1, 8))
    assert len({h.id for h in hits}) == 7
    assert all(by_id[h.id].title == h.title and by_id[h.id].text == h.text for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert [h.id for h in tiny_index.search("Which university has its main campus in Lawrence, Kansas?", k=7)] == \
        [h.id for h in hits]  # deterministic


def test_exact_passage_text_finds_itself(tiny_index, tiny_corpus_path):
    # Even with an untrained head, a query made of a passage's own opening words should find that passage.
    passages = read_corpus(tiny_corpus_path)[::5]
    found = sum(p.id in [h.id for h in tiny_index.search(p.colbert_text()[:160], k=5)] for p in passages)
    assert found >= 8, found  # 10 passages; chance level is 1 in 10


def test_tool_text_and_signature(tiny_index):
    tool = tiny_index.as_tool(k=3)
    assert tool.__name__ == "search"
    assert inspect.signature(tool).parameters["query"].annotation in (str, "str")
    assert "Returns the 3 most relevant passages" in tool.__doc__
    text = tool("Elko Regional Airport Nevada")
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("[1] ") and lines[2].startswith("[3] ")
    first = tiny_index.search("Elko Regional Airport Nevada", k=3)[0]
    assert lines[0].startswith(f"[1] {first.title}: {first.text[:40]}")
    assert tiny_index("Elko Regional Airport Nevada").count("\n") == tiny_index.k - 1  # __call__ uses k=5


def test_tool_rejects_bad_queries_with_a_usable_message(tiny_index):
    with pytest.raises(ValueError, match="query is empty"):
        tiny_index("   ")
    with pytest.raises(TypeError, match="takes a string"):
        tiny_index(["a"])


def test_building_twice_reuses_and_other_inputs_need_overwrite(tiny_index, tiny_corpus_path, base_checkpoint):
    before = json.loads((tiny_index.path / "agentdistill_index.json").read_text())
    again = ColBERTSearch.build(tiny_corpus_path, name="tiny", checkpoint=base_checkpoint, nbits=2, progress=False)
    assert json.loads((again.path / "agentdistill_index.json").read_text()) == before  # not rebuilt
    with pytest.raises(FileExistsError, match="built from other inputs.*overwrite"):
        ColBERTSearch.build(tiny_corpus_path, name="tiny", checkpoint=base_checkpoint, nbits=1, progress=False)


def test_compat_shim_makes_hf_colbert_constructible(base_checkpoint):
    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig
    from colbert.modeling.hf_colbert import class_factory
    from transformers import AutoConfig

    cls = class_factory(base_checkpoint)
    model = cls(AutoConfig.from_pretrained(base_checkpoint), ColBERTConfig(dim=128))  # raised before the shim
    assert model.linear.weight.shape == (128, 384)
    assert "all_tied_weights_keys" in model.__dict__  # post_init ran


def test_indexing_encodes_the_kmeans_sample_once(base_checkpoint, tiny_corpus_path):
    import torch

    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.indexing.collection_encoder import CollectionEncoder
    from colbert.infra import ColBERTConfig, Run
    from colbert.modeling.checkpoint import Checkpoint

    texts = [p.colbert_text() for p in read_corpus(tiny_corpus_path)[:10]]
    with compat.quiet(None), Run().context(compat.run_config()):
        config = ColBERTConfig(doc_maxlen=64, index_bsize=4)
        encoder = CollectionEncoder(config, Checkpoint(base_checkpoint, colbert_config=config))
        reference, reference_lengths = encoder.encode_passages(texts)
        encoded = []
        with compat.reuse_sample_encodings(), compat.encoding_progress(encoded.append):
            encoder.encode_passages(texts[2:6])  # the k-means sample
            embeddings, lengths = encoder.encode_passages(texts)  # every passage, in corpus order
    assert sum(encoded) == 10  # 4 for the sample, then only the 6 others
    assert lengths == reference_lengths
    assert torch.allclose(embeddings, reference, atol=1e-4)


def test_an_interrupted_build_resumes_with_its_finished_chunks(retrieval_home, base_checkpoint, tiny_corpus_path,
                                                               monkeypatch):
    from agentdistill.tools.retrieval import indexing

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # after colbert wrote every chunk, before the folder is complete

    monkeypatch.setattr(indexing, "write_jsonl", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ColBERTSearch.build(tiny_corpus_path, name="resumed", checkpoint=base_checkpoint, progress=False)
    partial = retrieval_home / "indexes" / "resumed.partial"
    chunk = partial / "0.codes.pt"
    assert chunk.is_file() and not (retrieval_home / "indexes" / "resumed").exists()
    written = chunk.stat().st_mtime_ns
    monkeypatch.undo()
    search = ColBERTSearch.build(tiny_corpus_path, name="resumed", checkpoint=base_checkpoint, progress=False)
    assert (search.path / "0.codes.pt").stat().st_mtime_ns == written  # kept, not encoded again
    assert not partial.exists() and not (search.path / "agentdistill_partial.json").exists()
    passage = read_corpus(tiny_corpus_path)[3]
    assert passage.id in [h.id for h in search.search(passage.colbert_text()[:160], k=3)]


def test_first_use_says_that_colbert_compiles_its_extensions(tmp_path):
    import os
    import subprocess
    import sys

    from agentdistill.tools.retrieval import compat

    assert compat.missing_extensions(tmp_path) == list(compat.EXTENSIONS)
    (tmp_path / "filter_pids_cpp").mkdir()
    (tmp_path / "filter_pids_cpp" / "filter_pids_cpp.so").write_bytes(b"")
    assert "filter_pids_cpp" not in compat.missing_extensions(tmp_path)
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path / "empty"))
    run = subprocess.run([sys.executable, "-c", "from agentdistill.tools.retrieval import compat; compat.ensure_colbert()"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "compiles its C++ extensions once" in run.stderr and str(tmp_path / "empty") in run.stderr
