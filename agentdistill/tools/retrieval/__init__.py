"""Retrieval for agents: colbert-ai (ColBERTv2 + PLAID) indexes, the `search` tool, a server, and baselines.

    from agentdistill.tools.retrieval import ColBERTSearch
    search = ColBERTSearch.load("multihop")        # built by `agentdistill index build CORPUS --name multihop`
    print(search("Who directed Ed Wood?"))           # "[1] Ed Wood (film): Ed Wood is a 1994 American ..."

Modules: compat (the colbert-ai shim for transformers 5 / CPU), corpus (reading JSONL/TSV), indexing (building),
colbert_search (ColBERTSearch), checkpoint (which checkpoint; the offline training recipe), server (HTTP),
baselines (BM25, dense MiniLM).
"""

from agentdistill.tools.retrieval.colbert_search import ColBERTSearch, Hit, IndexNotFoundError, format_hits, list_indexes
from agentdistill.tools.retrieval.corpus import CorpusError, Passage, read_corpus

__all__ = ["ColBERTSearch", "Hit", "IndexNotFoundError", "format_hits", "list_indexes", "CorpusError", "Passage",
           "read_corpus"]
