"""What every retriever looks like to an agent: `search(query) -> "[1] Title: text ..."`, and `open_search` to get one.

    from agentdistill.tools.retrieval import open_search
    search = open_search("multihop")                       # hybrid BM25 + ColBERT over a built index (the default)
    search = open_search("multihop", mode="colbert")       # ColBERT alone; mode="bm25": BM25 alone
    search = open_search(url="http://127.0.0.1:8893")      # whatever `agentdistill index serve` serves
    print(search("Who directed Ed Wood?"))                 # the tool's text; search.search(q, k) -> [Hit, ...]

A retriever subclasses SearchTool and implements `search(query, k) -> list[Hit]`; the tool text, the typed function
for agents and the sandbox (`as_tool`) and the argument checks are shared here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MODES = ("hybrid", "colbert", "bm25")
MODE_TEXT = {"hybrid": "BM25 and ColBERT, fused", "colbert": "ColBERT late interaction", "bm25": "BM25 keywords",
             "remote": "a retrieval server"}


@dataclass
class Hit:
    id: str
    title: str
    text: str
    score: float
    rank: int

    def to_dict(self) -> dict:
        return asdict(self)


def format_hits(hits: list[Hit], max_chars: int = 600) -> str:
    """The text a small model reads: one numbered passage per line, "[i] Title: text"."""
    if not hits:
        return "No passages found."
    lines = []
    for i, h in enumerate(hits, start=1):
        text = h.text if len(h.text) <= max_chars else h.text[:max_chars].rsplit(" ", 1)[0] + " ..."
        lines.append(f"[{i}] {h.title}: {text}" if h.title else f"[{i}] {text}")
    return "\n".join(lines)


def check_query(query) -> str:
    if not isinstance(query, str):
        raise TypeError(f"search(query) takes a string, got {type(query).__name__}: e.g. search(\"Ed Wood director\")")
    if not query.strip():
        raise ValueError("search(query): the query is empty; pass the words to look up, e.g. search(\"Ed Wood director\")")
    return query


class SearchTool:
    """Base of the retrievers: `k` passages per tool call, each cut to `max_chars` in the tool's text."""

    __name__ = "search"  # the name agents and dspy.Tool see
    mode = "?"  # hybrid | colbert | bm25 | remote: what ranks the passages (`search.mode`, the tool's docstring)
    k: int = 5
    max_chars: int = 600

    passages: list  # the searched Passage objects; a passage's number is its position here

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        raise NotImplementedError

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        """(passage number, score) pairs, best first, as Hits."""
        return [Hit(id=self.passages[i].id, title=self.passages[i].title, text=self.passages[i].text, score=score,
                    rank=rank) for rank, (i, score) in enumerate(ranked, start=1)]

    def __call__(self, query: str) -> str:
        """Search the Wikipedia passage index; returns the top passages as numbered lines "[i] Title: text"."""
        return format_hits(self.search(query), self.max_chars)

    def as_tool(self, k: int | None = None):
        """A plain typed function `search(query: str) -> str` for agents and the sandbox's host-tool channel."""
        k = k or self.k

        def search(query: str) -> str:
            return format_hits(self.search(query, k=k), self.max_chars)

        search.__doc__ = (
            f"Search a Wikipedia passage index for `query` (a few keywords or a question).\n"
            f"Returns the {k} most relevant passages, best first, one per line as \"[i] Title: text\".\n"
            "Search one fact at a time; for multi-hop questions search again with what you learned."
        )
        return search


def open_search(index=None, *, url: str | None = None, mode: str = "hybrid", k: int = 5, max_chars: int = 600,
                **kwargs) -> SearchTool:
    """The `search` tool over a built index (`mode`: hybrid, the default; colbert; bm25) or a server (`url`).

    A server ranks as it was started (`agentdistill index serve NAME --mode ...`); `mode` applies to local indexes.
    Extra keyword arguments go to the retriever (e.g. HybridSearch's `depth`, `fusion`).
    """
    from agentdistill.tools.retrieval.colbert_search import ColBERTSearch

    if (index is None) == (url is None):
        raise ValueError("open_search needs exactly one of `index` (a built index name or folder) or `url` (a server)")
    if url is not None:
        return ColBERTSearch(url=url, k=k, max_chars=max_chars, **kwargs)
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "colbert":
        return ColBERTSearch.load(index, k=k, max_chars=max_chars, **kwargs)
    if mode == "bm25":
        from agentdistill.tools.retrieval.bm25 import BM25Search

        return BM25Search.load(index, k=k, max_chars=max_chars, **kwargs)
    from agentdistill.tools.retrieval.hybrid import HybridSearch

    return HybridSearch.load(index, k=k, max_chars=max_chars, **kwargs)
