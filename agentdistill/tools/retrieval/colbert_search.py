"""`ColBERTSearch`: a colbert-ai (ColBERTv2 + PLAID) index as an agent tool, local or behind a server.

    from agentdistill.tools import ColBERTSearch
    search = ColBERTSearch.build("passages.jsonl.gz", name="wiki")   # or ColBERTSearch.load("wiki")
    search.search("Ed Wood director", k=3)    # -> [Hit(id, title, text, score, rank), ...]
    print(search("Ed Wood director"))         # the tool: "[1] Ed Wood: Edward Davis Wood Jr. was ..."
    remote = ColBERTSearch(url="http://127.0.0.1:8893")   # the same tool over `agentdistill index serve wiki`

Indexes live in `agentdistill.settings.home()/indexes/NAME` (or any folder you pass). A build writes the colbert
index, `passages.jsonl` (what hits are read from) and `agentdistill_index.json` (what it was built from); building
again with the same corpus bytes, checkpoint and settings reuses it.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from agentdistill.tools.retrieval.corpus import Passage, read_corpus
from agentdistill.tools.retrieval.indexing import MANIFEST, IndexExistsError  # noqa: F401  (re-exported)
from agentdistill.tools.retrieval.search_tool import Hit, SearchTool, check_query, format_hits  # noqa: F401


class IndexNotFoundError(FileNotFoundError):
    pass


def index_root() -> Path:
    from agentdistill.settings import home

    return home() / "indexes"


def list_indexes(root: Path | None = None) -> list[str]:
    root = root or index_root()
    return sorted(p.name for p in root.glob("*") if (p / MANIFEST).exists()) if root.exists() else []


def resolve_index(name_or_path: str | Path) -> Path:
    """An index folder from a name (under index_root()) or a path; IndexNotFoundError says how to build one."""
    path = Path(name_or_path).expanduser()
    if not (path / MANIFEST).exists():
        path = index_root() / str(name_or_path)
    if not (path / MANIFEST).exists():
        known = ", ".join(list_indexes()) or "none yet"
        raise IndexNotFoundError(
            f"no retrieval index {str(name_or_path)!r} (looked in {Path(name_or_path).expanduser()} and {path}); "
            f"indexes in {index_root()}: {known}. Build it with `agentdistill index build CORPUS --name NAME` "
            "or ColBERTSearch.build(corpus, name=...)."
        )
    return path


class ColBERTSearch(SearchTool):
    """Top-k passage search with colbert-ai late interaction, usable directly as an agent tool.

    Args:
        index: an index name (under `home()/indexes`) or folder, built by `ColBERTSearch.build`.
        url: instead of a local index, a server started by `agentdistill index serve` (or any ColBERTv2 server
            with the `/api/search?query=&k=` JSON shape that `dspy.ColBERTv2` uses).
        k: passages returned by the tool call `search(query)`.
        max_chars: each passage is cut to this many characters in the tool's text.

    Example:
        >>> search = ColBERTSearch.load("multihop")
        >>> print(search("Who directed Ed Wood?"))      # "[1] Ed Wood (film): Ed Wood is a 1994 ..."
    """

    def __init__(self, index: str | Path | None = None, *, url: str | None = None, k: int = 5, max_chars: int = 600,
                 timeout: float = 30.0):
        if (index is None) == (url is None):
            raise ValueError("ColBERTSearch needs exactly one of `index` (a local index name/folder) or `url` (a server)")
        self.k, self.max_chars, self.timeout = k, max_chars, timeout
        self.url = url.rstrip("/") if url else None
        self.mode = "remote" if url else "colbert"
        self.path = resolve_index(index) if index is not None else None
        self.manifest = json.loads((self.path / MANIFEST).read_text()) if self.path else None
        self._searcher = None
        self._passages: list[Passage] | None = None
        self._lock = threading.Lock()  # colbert's Searcher mutates its config per call: one search at a time
        self.__doc__ = self.as_tool().__doc__

    # ---- building and loading -------------------------------------------------------------------------------
    @classmethod
    def build(cls, corpus: str | Path | list, name: str | None = None, *, index_dir: str | Path | None = None,
              checkpoint: str | None = None, nbits: int = 2, doc_maxlen: int = 180, overwrite: bool = False,
              max_sample_passages: int | None = None, max_partitions: int | None = None, progress: bool = True,
              **kwargs) -> "ColBERTSearch":
        """Build (or reuse) an index of `corpus` (a .jsonl/.tsv path or a list of Passage/dicts).

        `nbits` is the residual compression (1, 2 or 4 bits per dimension). On CPU the k-means sample and centroid
        count are capped (sample <= max(1000, N/5) passages, <= 4096 centroids; see compat.indexing_budget).
        """
        from agentdistill.tools.retrieval.indexing import build_index

        if index_dir is None:
            if not name:
                raise ValueError("ColBERTSearch.build needs a `name` (stored under home()/indexes) or an `index_dir`")
            index_dir = index_root() / name
        build_index(corpus, Path(index_dir), checkpoint=checkpoint, nbits=nbits, doc_maxlen=doc_maxlen,
                    overwrite=overwrite, max_sample_passages=max_sample_passages, max_partitions=max_partitions,
                    progress=progress)
        return cls(index_dir, **kwargs)

    @classmethod
    def load(cls, index: str | Path, **kwargs) -> "ColBERTSearch":
        """Open an existing index (loads the model and index now, not at the first query)."""
        search = cls(index, **kwargs)
        search._ensure_loaded()
        return search

    def _ensure_loaded(self):
        if self.url or self._searcher is not None:
            return
        from agentdistill.tools.retrieval import compat

        compat.ensure_colbert()
        from colbert import Searcher
        from colbert.infra import ColBERTConfig, Run

        passages = self.passages
        with compat.quiet(self.path / "search.log"), Run().context(compat.run_config()):
            self._searcher = Searcher(index=str(self.path), checkpoint=self.manifest["checkpoint"],
                                      collection=[p.colbert_text() for p in passages],
                                      config=ColBERTConfig(query_maxlen=self.manifest.get("query_maxlen", 32)),
                                      verbose=0)
            self._searcher.search("warm up", k=1)  # first query compiles/loads lazily: pay it here

    # ---- searching ----------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The top-k passages for `query`, best first."""
        query, k = check_query(query), int(k or self.k)
        if self.url:
            return self._remote_search(query, k)
        top, _ = self.rank(query, k)
        return self.hits(top)

    def rank(self, query: str, k: int, candidates=()) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """PLAID's top k as (passage number, score), best first, and the exact late-interaction scores of
        `candidates` (passage numbers, e.g. another retriever's hits), from one encoding of the query."""
        self._ensure_loaded()
        candidates = sorted(set(int(c) for c in candidates))
        with self._lock:
            self._searcher.configure(**_plaid_params(k))
            Q = self._searcher.encode(query)
            pids, _ranks, scores = self._searcher.dense_search(Q, k)
            scored = {}
            if candidates:
                cand_pids, _, cand_scores = self._searcher.dense_search(Q, len(candidates), pids=candidates)
                scored = {int(p): float(s) for p, s in zip(cand_pids, cand_scores)}
        return [(int(p), float(s)) for p, s in zip(pids, scores)], scored

    @property
    def passages(self) -> list[Passage]:
        """The indexed passages, in index order (a passage's number is its position here)."""
        if self._passages is None:
            self._passages = read_corpus(self.path / "passages.jsonl")
        return self._passages

    def _remote_search(self, query: str, k: int) -> list[Hit]:
        endpoint = self.url if self.url.endswith("/api/search") else self.url + "/api/search"
        request_url = endpoint + "?" + urllib.parse.urlencode({"query": query, "k": k})
        try:
            with urllib.request.urlopen(request_url, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except OSError as e:
            raise ConnectionError(f"retrieval server {self.url} did not answer ({e}); is `agentdistill index serve` "
                                  "running there?") from e
        if payload.get("error"):
            raise RuntimeError(f"retrieval server {self.url}: {payload.get('message', payload)}")
        hits = []
        for rank, d in enumerate(payload["topk"][:k], start=1):
            title, text = d.get("title"), d.get("passage")
            if title is None or text is None:  # a public ColBERTv2 server: text is "Title | passage"
                title, _, text = d["text"].partition(" | ") if " | " in d["text"] else ("", "", d["text"])
            hits.append(Hit(id=str(d.get("id", d.get("pid"))), title=title, text=text, score=float(d["score"]),
                            rank=int(d.get("rank", rank))))
        return hits

    def __repr__(self):
        where = self.url or self.path
        return f"ColBERTSearch({str(where)!r}, k={self.k})"


def _plaid_params(k: int) -> dict:
    # colbert picks these on the first call and then keeps them for every k; we set them per call.
    if k <= 10:
        return dict(ncells=1, centroid_score_threshold=0.5, ndocs=256)
    if k <= 100:
        return dict(ncells=2, centroid_score_threshold=0.45, ndocs=1024)
    return dict(ncells=4, centroid_score_threshold=0.4, ndocs=max(k * 4, 4096))
