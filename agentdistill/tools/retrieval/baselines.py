"""The single-vector baseline ColBERT is measured against (bench/bench_retrieval.py), and BM25 (bm25.py).

    dense = DenseSearch(passages)               # all-MiniLM-L6-v2 mean-pooled, cosine, exact (numpy) top-k
    dense.search("Ed Wood director", k=5)       # -> [Hit(id, title, text, score, rank), ...]

It takes the same passages as ColBERTSearch and returns the same Hit objects, so one evaluation loop serves all.
"""

from __future__ import annotations

import numpy as np

from agentdistill.tools.retrieval.bm25 import BM25Search  # noqa: F401  (the other baseline)
from agentdistill.tools.retrieval.corpus import Passage
from agentdistill.tools.retrieval.search_tool import Hit, SearchTool


class DenseSearch(SearchTool):
    """Single-vector retrieval with the same MiniLM encoder ColBERT starts from (its own sentence-embedding use)."""

    mode = "dense"

    def __init__(self, passages: list[Passage], model_path: str | None = None, batch_size: int = 64,
                 show_progress: bool = False):
        from sentence_transformers import SentenceTransformer

        from agentdistill.tools.retrieval.checkpoint import minilm_path

        self.passages = passages
        self.model = SentenceTransformer(str(model_path or minilm_path()), device="cpu")
        self.embeddings = self.model.encode([f"{p.title}: {p.text}" if p.title else p.text for p in passages],
                                            batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=show_progress)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
        scores = self.embeddings @ q
        k = min(k, len(self.passages))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return self.hits([(int(i), float(scores[i])) for i in top])
