"""Training the ColBERT head on cached frozen-encoder states gives the losses of recomputing them every step."""

import pytest

from agentdistill.tools.retrieval import read_corpus


def _train(base: str, folder, cache: bool, tiny_corpus_path):
    from agentdistill.tools.retrieval import compat
    from agentdistill.tools.retrieval.checkpoint import _losses_from_log
    from agentdistill.tools.retrieval.frozen_states import frozen_encoder_states

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig, Run

    passages = read_corpus(tiny_corpus_path)
    titles = [p.title for p in passages]
    queries = {0: "Which university is in Lawrence, Kansas?", 1: "Which airport serves Elko, Nevada?",
               2: "What is the Apple Remote?"}
    positives = {0: titles.index("University of Kansas"), 1: titles.index("Elko Regional Airport"),
                 2: titles.index("Apple Remote")}
    negatives = {0: [titles.index("Kansas City jazz"), titles.index("University of the Incarnate Word")],
                 1: [titles.index("Pensacola International Airport"), titles.index("Bishop International Airport")],
                 2: [titles.index("Siri Remote"), titles.index("Universal remote")]}
    # 4 steps of 2 questions: every text comes back, so the cache serves later steps
    triples = [[q, positives[q], *negatives[q]] for q in (0, 1, 2, 0, 1, 2, 0, 1)]
    steps = 4
    config = ColBERTConfig(checkpoint=base, bsize=2, nway=3, lr=1e-3, warmup=None, maxsteps=steps,
                           warmup_bert=steps, doc_maxlen=64, query_maxlen=32, use_ib_negatives=True, amp=False,
                           dim=128, similarity="cosine")
    log = folder / "train.log"
    with compat.quiet(log), compat.single_process_training(folder / "checkpoint") as train, \
            Run().context(compat.run_config(amp=False)), frozen_encoder_states(cache=cache) as stats:
        train(config, triples, queries, [p.colbert_text() for p in passages])
    return _losses_from_log(log), stats


def test_cached_states_train_the_head_like_recomputed_states(base_checkpoint, tiny_corpus_path, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cached, cached_stats = _train(base_checkpoint, tmp_path / "a", True, tiny_corpus_path)
    fresh, fresh_stats = _train(base_checkpoint, tmp_path / "b", False, tiny_corpus_path)
    assert len(cached) == len(fresh) == 4
    assert cached == pytest.approx(fresh, rel=1e-4, abs=1e-5)
    assert cached[-1] < cached[0]  # the head learns
    # 3 queries + 9 passages: encoded once each; every later use is served from the cache
    assert cached_stats.computed == 12 and cached_stats.reused > 0
    assert fresh_stats.computed > cached_stats.computed and fresh_stats.reused == 0
