"""The two retrieval baselines ColBERT is measured against (bench/bench_retrieval.py): BM25 and dense MiniLM.

    bm25 = BM25Search(passages)                 # bm25s, English stopwords, title + text
    dense = DenseSearch(passages)               # all-MiniLM-L6-v2 mean-pooled, cosine, exact (numpy) top-k
    bm25.search("Ed Wood director", k=5)        # -> [Hit(id, title, text, score, rank), ...]

Both take the same passages as ColBERTSearch and return the same Hit objects, so one evaluation loop serves all.
"""

from __future__ import annotations

import numpy as np

from agentdistill.tools.retrieval.colbert_search import Hit, format_hits
from agentdistill.tools.retrieval.corpus import Passage


class _Baseline:
    passages: list[Passage]

    def _hits(self, indices, scores) -> list[Hit]:
        return [Hit(id=self.passages[i].id, title=self.passages[i].title, text=self.passages[i].text,
                    score=float(s), rank=r) for r, (i, s) in enumerate(zip(indices, scores), start=1)]

    def __call__(self, query: str) -> str:
        return format_hits(self.search(query, k=5))


class BM25Search(_Baseline):
    """Okapi BM25 (bm25s defaults: k1=1.5, b=0.75) over "title text"."""

    def __init__(self, passages: list[Passage]):
        import bm25s

        self.passages = passages
        self._bm25s = bm25s
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize([f"{p.title} {p.text}" for p in passages], stopwords="en",
                                        show_progress=False), show_progress=False)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        k = min(k, len(self.passages))
        docs, scores = self.index.retrieve(tokens, k=k, show_progress=False)
        return self._hits([int(d) for d in docs[0]], scores[0])


class DenseSearch(_Baseline):
    """Single-vector retrieval with the same MiniLM encoder ColBERT starts from (its own sentence-embedding use)."""

    def __init__(self, passages: list[Passage], model_path: str | None = None, batch_size: int = 64,
                 show_progress: bool = False):
        from sentence_transformers import SentenceTransformer

        from agentdistill.tools.retrieval.checkpoint import base_encoder_path

        self.passages = passages
        self.model = SentenceTransformer(str(model_path or base_encoder_path()), device="cpu")
        self.embeddings = self.model.encode([f"{p.title}: {p.text}" if p.title else p.text for p in passages],
                                            batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=show_progress)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
        scores = self.embeddings @ q
        k = min(k, len(self.passages))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return self._hits(top.tolist(), scores[top])
