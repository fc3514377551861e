"""Tools the agent's code reaches: the sandboxed Python executor and the ColBERT retrieval tool.

    from agentdistill.tools import Sandbox, open_search
    search = open_search("multihop")            # hybrid BM25 + ColBERT (mode="colbert" / "bm25" for one stage)
    with Sandbox(tools={"search": search}).episode() as ep:
        print(ep.run('print(search("Who directed Ed Wood?"))').stdout)

Both are imported lazily: the sandbox needs no torch, retrieval pulls in colbert-ai.
"""

from importlib import import_module

_EXPORTS = {
    "Sandbox": "agentdistill.tools.sandbox",
    "Episode": "agentdistill.tools.sandbox",
    "StepResult": "agentdistill.tools.sandbox",
    "IsolationReport": "agentdistill.tools.sandbox",
    "SandboxError": "agentdistill.tools.sandbox",
    "ColBERTSearch": "agentdistill.tools.retrieval",
    "HybridSearch": "agentdistill.tools.retrieval",
    "open_search": "agentdistill.tools.retrieval",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agentdistill.tools' has no attribute {name!r}")
