"""`HybridSearch`: BM25 and ColBERT candidates fused into one ranking - the default `search` tool of the factual agent.

    from agentdistill.tools.retrieval import HybridSearch
    search = HybridSearch.load("multihop")              # a ColBERT index; its BM25 index is saved beside it once
    search.search("Ed Wood director", k=5)              # -> [Hit, ...]
    print(search("Ed Wood director"))                   # the tool's text
    HybridSearch.load("multihop", fusion="rrf")         # or "linear" (the default) / "rerank"

Both stages return their top `depth` passages; the union is ranked by one of
- "linear": a weighted sum of the two scores, each standardised over the union (z-scores); a passage one stage did
  not return still gets that stage's exact score (BM25 scores every passage; ColBERT scores the BM25 candidates by
  late interaction over their stored embeddings), so nothing is scored as missing;
- "rrf": reciprocal-rank fusion, sum of 1 / (rrf_k + rank) over the stages (Cormack et al., 2009);
- "rerank": ColBERT's exact score alone over the union (BM25 only widens ColBERT's candidate set).
bench/bench_retrieval.py measures the three; the defaults (linear, depth 20, weight 0.7) are the setting its tuning
questions picked with the shipped checkpoint (results/retrieval.json, "tuning").
The BM25 part costs milliseconds; one query is encoded once for both of ColBERT's uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agentdistill.tools.retrieval.search_tool import Hit, SearchTool, check_query

FUSIONS = ("linear", "rrf", "rerank")


def reciprocal_rank_fusion(rankings: list[list[int]], rrf_k: float = 60.0) -> list[tuple[int, float]]:
    """Passages of several rankings (best first) by the sum of 1 / (rrf_k + rank), best first; ties by number."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def linear_fusion(first: dict[int, float], second: dict[int, float], weight: float) -> list[tuple[int, float]]:
    """weight * z(first) + (1 - weight) * z(second) over the passages both dicts score (z: standardised over them)."""
    ids = sorted(first.keys() & second.keys())
    if not ids:
        return []
    fused = weight * _z(np.array([first[i] for i in ids])) + (1 - weight) * _z(np.array([second[i] for i in ids]))
    return sorted(zip(ids, fused.tolist()), key=lambda item: (-item[1], item[0]))


def _z(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


class HybridSearch(SearchTool):
    """BM25 + ColBERT over one built index (see the module docstring for the fusions).

    Args:
        index: an index name or folder built by `ColBERTSearch.build` / `agentdistill index build`.
        k: passages per tool call. max_chars: each passage's length in the tool's text.
        depth: candidates taken from each stage.
        fusion: "linear" | "rrf" | "rerank".
        weight: ColBERT's share of the linear fusion (BM25 gets 1 - weight).
        rrf_k: the constant of reciprocal-rank fusion.
    """

    mode = "hybrid"

    def __init__(self, index: str | Path, *, k: int = 5, max_chars: int = 600, depth: int = 20,
                 fusion: str = "linear", weight: float = 0.7, rrf_k: float = 60.0):
        from agentdistill.tools.retrieval.colbert_search import ColBERTSearch

        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight={weight}: ColBERT's share of the fused score must lie in [0, 1]")
        if depth < 1:
            raise ValueError(f"depth={depth}: take at least one candidate from each stage")
        self.k, self.max_chars, self.depth = k, max_chars, depth
        self.fusion, self.weight, self.rrf_k = fusion, weight, rrf_k
        self.colbert = ColBERTSearch(index, k=k, max_chars=max_chars)
        self.path, self.manifest = self.colbert.path, self.colbert.manifest
        self._bm25 = None
        self.__doc__ = self.as_tool().__doc__

    @classmethod
    def load(cls, index: str | Path, **kwargs) -> "HybridSearch":
        """Open an index and load both stages now (not at the first query)."""
        search = cls(index, **kwargs)
        search.colbert._ensure_loaded()
        search.bm25  # noqa: B018  (loads or builds the BM25 index)
        return search

    @property
    def passages(self):
        return self.colbert.passages

    @property
    def bm25(self):
        if self._bm25 is None:
            from agentdistill.tools.retrieval.bm25 import BM25Search

            self._bm25 = BM25Search.load(self.path, passages=self.colbert.passages)
        return self._bm25

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The top-k passages for `query` by the fused ranking, best first (score: the fused score)."""
        query, k = check_query(query), int(k or self.k)
        depth = max(self.depth, k)
        bm25_all = self.bm25.scores(query)
        lexical = self.bm25.top(bm25_all, depth)
        candidates = [i for i, _ in lexical] if self.fusion != "rrf" else ()
        dense, exact = self.colbert.rank(query, depth, candidates=candidates)
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion([[i for i, _ in lexical], [i for i, _ in dense]], self.rrf_k)
        else:
            colbert_scores = {**exact, **dict(dense)}
            if self.fusion == "rerank":
                fused = sorted(colbert_scores.items(), key=lambda item: (-item[1], item[0]))
            else:
                bm25_scores = {i: float(bm25_all[i]) for i in colbert_scores}
                fused = linear_fusion(colbert_scores, bm25_scores, self.weight)
        return self.hits(fused[:k])

    def __repr__(self):
        return f"HybridSearch({str(self.path)!r}, k={self.k}, fusion={self.fusion!r}, depth={self.depth})"
