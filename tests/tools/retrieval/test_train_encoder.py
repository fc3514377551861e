"""The offline checkpoint recipe (`agentdistill index train-encoder`), run for two tiny steps."""

import json
import re

import pytest

from agentdistill.tools.retrieval import ColBERTSearch
from agentdistill.tools.retrieval.checkpoint import (CheckpointError, EncoderTrainConfig, _heldout_questions,
                                                     build_training_triples, default_data_dir, resolve_checkpoint,
                                                     train_encoder)


def test_a_plain_encoder_is_refused_as_checkpoint():
    from agentdistill.tools.retrieval.checkpoint import minilm_path

    with pytest.raises(CheckpointError, match="plain encoder.*train-encoder --base"):
        resolve_checkpoint(minilm_path())


@pytest.mark.slow
def test_training_triples_use_train_questions_only():
    cfg = EncoderTrainConfig(max_steps=5, bsize=4)
    triples, queries, collection, stats = build_training_triples(cfg)
    held = _heldout_questions(default_data_dir())
    assert not {re.sub(r"\W+", " ", q.lower()).strip() for q in queries.values()} & held
    assert len(triples) == 20 and all(len(t) == 1 + cfg.nway for t in triples)
    assert all(len(set(t[1:])) == cfg.nway for t in triples)  # positive and negatives are distinct passages
    assert stats["train_questions"] > 500 and len(collection) == stats["corpus_passages"]


@pytest.mark.slow
def test_train_encoder_writes_a_usable_checkpoint(retrieval_home, tmp_path, tiny_corpus_path):
    out = train_encoder(EncoderTrainConfig(max_steps=2, freeze_encoder_steps=1, bsize=2,
                                           output=str(tmp_path / "ck")), progress=False)
    record = json.loads((out / "agentdistill_checkpoint.json").read_text())
    assert record["steps"] == 2 and record["loss_first"] is not None
    assert resolve_checkpoint(out) == str(out.resolve())
    search = ColBERTSearch.build(tiny_corpus_path, name="trained-tiny", checkpoint=str(out), progress=False)
    assert len(search.search("Kansas fight song", k=3)) == 3
