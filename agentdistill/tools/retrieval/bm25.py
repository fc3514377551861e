"""`BM25Search`: Okapi BM25 (bm25s) over "title text", the keyword half of the hybrid search and its baseline.

    bm25 = BM25Search(passages)                  # in memory, from Passage objects (seconds for 54k passages)
    bm25 = BM25Search.load("multihop")           # over a built index's passages; saved in <index>/bm25 once
    bm25.search("Ed Wood director", k=5)         # -> [Hit(id, title, text, score, rank), ...]
    bm25.scores("Ed Wood director")              # the BM25 score of every passage (numpy, index order)

bm25s defaults (k1=1.5, b=0.75, Lucene's idf), English stopwords, no stemming: the baseline the README measures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from agentdistill.tools.retrieval.corpus import Passage, read_corpus
from agentdistill.tools.retrieval.search_tool import Hit, SearchTool, check_query

FOLDER = "bm25"  # inside an index folder
VERSION = 1  # bump when the tokenisation or the parameters change


class BM25Search(SearchTool):
    """Okapi BM25 over "title text" of `passages`."""

    mode = "bm25"

    def __init__(self, passages: list[Passage], *, k: int = 5, max_chars: int = 600, index=None):
        import bm25s

        self.passages, self.k, self.max_chars = passages, k, max_chars
        self._bm25s = bm25s
        if index is None:
            index = bm25s.BM25()
            index.index(bm25s.tokenize([f"{p.title} {p.text}" for p in passages], stopwords="en",
                                       show_progress=False), show_progress=False)
        self.index = index
        self.path = None  # the index folder, when loaded from one
        self.__doc__ = self.as_tool().__doc__  # what an agent is told the tool does (not this class's docstring)

    @classmethod
    def load(cls, index, *, passages: list[Passage] | None = None, **kwargs) -> "BM25Search":
        """BM25 over the passages of a built index (name or folder), saved beside them at the first load.

        `passages`: the index's passages when the caller has read them already (HybridSearch shares its list)."""
        from agentdistill.tools.retrieval.colbert_search import resolve_index
        from agentdistill.tools.retrieval.indexing import MANIFEST

        path = resolve_index(index)
        passages = passages if passages is not None else read_corpus(path / "passages.jsonl")
        stamp = {"version": VERSION, "corpus": json.loads((path / MANIFEST).read_text()).get("fingerprint")}
        folder = path / FOLDER
        try:
            if json.loads((folder / "agentdistill_bm25.json").read_text()) == stamp:
                import bm25s

                search = cls(passages, index=bm25s.BM25.load(str(folder), mmap=False, show_progress=False), **kwargs)
                search.path = path
                return search
        except (OSError, ValueError):
            pass
        search = cls(passages, **kwargs)
        search.save(folder, stamp)
        search.path = path
        return search

    def save(self, folder: Path, stamp: dict) -> None:
        """Write the index to `folder` (a temporary sibling renamed when complete); a read-only place is skipped."""
        partial = folder.with_name(folder.name + ".partial")
        try:
            shutil.rmtree(partial, ignore_errors=True)
            self.index.save(str(partial), show_progress=False)
            (partial / "agentdistill_bm25.json").write_text(json.dumps(stamp) + "\n")
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        except OSError:  # a read-only index folder: BM25 is rebuilt in memory at each load (seconds)
            shutil.rmtree(partial, ignore_errors=True)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for `query` (0 where no query term occurs)."""
        tokens = self._bm25s.tokenize([check_query(query)], stopwords="en", return_ids=False, show_progress=False)[0]
        return np.asarray(self.index.get_scores(tokens), dtype=np.float32)

    def rank(self, query: str, k: int) -> list[tuple[int, float]]:
        """The top k as (passage number, score), best first; passages without any query term are left out."""
        return self.top(self.scores(query), k)

    @staticmethod
    def top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k best of `scores` (from .scores()) as (passage number, score); zero scores are left out."""
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by passage number: deterministic
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self.hits(self.rank(query, int(k or self.k)))
