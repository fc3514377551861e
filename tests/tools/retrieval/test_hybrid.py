"""HybridSearch (BM25 + ColBERT fused) and open_search on the 50-passage index; the fusion rules on fixed rankings."""

import statistics

import pytest

from agentdistill.tools.retrieval import BM25Search, ColBERTSearch, HybridSearch, open_search, read_corpus
from agentdistill.tools.retrieval.hybrid import linear_fusion, reciprocal_rank_fusion


def test_reciprocal_rank_fusion_rewards_agreement_and_keeps_one_sided_hits():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], rrf_k=60)
    order = [i for i, _ in fused]
    assert order[:2] == [1, 3]  # in both lists, near the top
    assert set(order) == {1, 2, 3, 4}  # a passage only one stage found is kept
    assert dict(fused)[1] == pytest.approx(1 / 61 + 1 / 62)
    assert reciprocal_rank_fusion([[5, 6], []]) == reciprocal_rank_fusion([[5, 6]])


def test_linear_fusion_standardises_each_stage_and_weights_them():
    colbert = {1: 30.0, 2: 20.0, 3: 10.0}
    bm25 = {1: 0.0, 2: 1.0, 3: 50.0}  # another scale entirely: z-scores make the weight meaningful
    assert [i for i, _ in linear_fusion(colbert, bm25, weight=1.0)] == [1, 2, 3]
    assert [i for i, _ in linear_fusion(colbert, bm25, weight=0.0)] == [3, 2, 1]
    balanced = dict(linear_fusion(colbert, bm25, weight=0.25))
    z_colbert = {1: 1.224745, 2: 0.0, 3: -1.224745}  # (x - mean) / population std
    z_bm25 = {i: (v - 17.0) / statistics.pstdev(bm25.values()) for i, v in bm25.items()}
    assert balanced == pytest.approx({i: 0.25 * z_colbert[i] + 0.75 * z_bm25[i] for i in colbert}, rel=1e-5)
    assert linear_fusion({1: 2.0}, {1: 2.0}, 0.5) == [(1, 0.0)]  # one candidate: no spread, no division by zero


@pytest.fixture(scope="module")
def hybrid(tiny_index):
    return HybridSearch.load(tiny_index.path, depth=20)


def _titles(hits):
    return [h.title for h in hits]


def test_hybrid_finds_what_colbert_alone_misses(hybrid, tiny_index):
    # An acronym the untrained head does not tie to its passage; BM25 matches the token "UMKC".
    gold = "University of Missouri–Kansas City"
    assert gold not in _titles(tiny_index.search("UMKC", k=3))
    assert gold in _titles(hybrid.bm25.search("UMKC", k=3))
    for fusion in ("linear", "rrf"):
        hybrid.fusion = fusion
        assert _titles(hybrid.search("UMKC", k=3))[0] == gold, fusion
    hybrid.fusion = "linear"


def test_hybrid_keeps_colbert_hits_when_bm25_has_no_match(hybrid, tiny_index):
    # no passage holds the token "smartwatch": BM25 returns nothing, the hybrid still returns ColBERT's ranking
    assert hybrid.bm25.search("smartwatch", k=3) == []
    assert _titles(hybrid.search("smartwatch", k=3)) == _titles(tiny_index.search("smartwatch", k=20))[:3]


def test_hybrid_scores_bm25_candidates_by_exact_late_interaction(hybrid, tiny_index):
    # ColBERT scores of BM25's candidates equal the scores ColBERT's own search gives the same passages
    query = "Which university has its main campus in Lawrence, Kansas?"
    top, _ = tiny_index.rank(query, 50)
    own = dict(top)
    _, exact = tiny_index.rank(query, 50, candidates=list(own)[:10])
    assert exact.keys() == set(list(own)[:10])
    for i, score in exact.items():
        assert score == pytest.approx(own[i], rel=1e-4)


def test_hybrid_hits_are_corpus_passages_ranked_and_deterministic(hybrid, tiny_corpus_path):
    by_id = {p.id: p for p in read_corpus(tiny_corpus_path)}
    hits = hybrid.search("Elko Regional Airport Nevada", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and len({h.id for h in hits}) == 5
    assert all(by_id[h.id].title == h.title and by_id[h.id].text == h.text for h in hits)
    assert hits[0].title == "Elko Regional Airport"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.id for h in hybrid.search("Elko Regional Airport Nevada", k=5)] == [h.id for h in hits]


def test_bm25_index_is_saved_beside_the_colbert_index_and_reused(hybrid, tiny_index):
    folder = tiny_index.path / "bm25"
    assert (folder / "agentdistill_bm25.json").is_file()
    stamp = (folder / "agentdistill_bm25.json").stat().st_mtime_ns
    again = BM25Search.load(tiny_index.path)
    assert (folder / "agentdistill_bm25.json").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    fresh = BM25Search(read_corpus(tiny_index.path / "passages.jsonl"))
    for query in ("Kansas City jazz", "Apple remote control device"):
        assert [h.id for h in again.search(query, k=5)] == [h.id for h in fresh.search(query, k=5)]


def test_open_search_modes_and_the_tool_says_which(tiny_index):
    assert isinstance(open_search(tiny_index.path), HybridSearch)
    assert isinstance(open_search(tiny_index.path, mode="colbert"), ColBERTSearch)
    bm25 = open_search(tiny_index.path, mode="bm25", k=2)
    assert isinstance(bm25, BM25Search) and bm25.mode == "bm25"
    assert bm25("Kansas City jazz").count("\n") == 1
    assert open_search(tiny_index.path).mode == "hybrid"
    with pytest.raises(ValueError, match="unknown retrieval mode 'dense'.*hybrid, colbert, bm25"):
        open_search(tiny_index.path, mode="dense")
    with pytest.raises(ValueError, match="exactly one"):
        open_search()
    with pytest.raises(ValueError, match="unknown fusion 'max'"):
        HybridSearch(tiny_index.path, fusion="max")


def test_hybrid_tool_is_the_search_function_agents_see(hybrid):
    tool = hybrid.as_tool(k=2)
    assert tool.__name__ == "search"
    lines = tool("Gerald Ford presidential library").splitlines()
    assert len(lines) == 2 and lines[0].startswith("[1] ")
    with pytest.raises(ValueError, match="query is empty"):
        hybrid("  ")


def test_every_search_mode_describes_itself_to_the_agent_as_the_search_tool(tiny_index):
    from agentdistill.programs.rendering import tool_spec

    for mode in ("hybrid", "colbert", "bm25"):
        spec = tool_spec(open_search(tiny_index.path, mode=mode, k=3))
        assert spec["doc"].startswith("Search a Wikipedia passage index") and "the 3 most relevant" in spec["doc"]
