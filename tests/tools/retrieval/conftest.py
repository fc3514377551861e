"""Fixtures for the retrieval tests: a 50-passage corpus, and one tiny colbert index built once per session.

The index uses all-MiniLM-L6-v2 with a seeded, untrained 128-dim ColBERT head: the tests check mechanics
(build, reuse, search, server, tool), not ranking quality (bench/bench_retrieval.py measures that).
Compiled colbert C++ extensions are cached in the system temp folder (not the repo), shared across sessions.
"""

import os
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def retrieval_home(tmp_path_factory):
    """A private AGENTDISTILL_HOME for the session (indexes land there), restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("AGENTDISTILL_HOME", "TORCH_EXTENSIONS_DIR")}
    home = tmp_path_factory.mktemp("agentdistill_home")
    os.environ["AGENTDISTILL_HOME"] = str(home)
    os.environ["TORCH_EXTENSIONS_DIR"] = str(Path(tempfile.gettempdir()) / f"agentdistill-test-torch-ext-{os.getuid()}")
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_corpus_path() -> Path:
    return DATA / "tiny_corpus.jsonl"


@pytest.fixture(scope="session")
def base_checkpoint(retrieval_home) -> str:
    """MiniLM + a seeded untrained ColBERT head, saved once (a plain encoder gets a new random head per load)."""
    from agentdistill.tools.retrieval.checkpoint import init_checkpoint, minilm_path

    return str(init_checkpoint(minilm_path(), retrieval_home / "minilm-untrained-head"))


@pytest.fixture(scope="session")
def tiny_index(retrieval_home, tiny_corpus_path, base_checkpoint):
    from agentdistill.tools.retrieval import ColBERTSearch

    search = ColBERTSearch.build(tiny_corpus_path, name="tiny", checkpoint=base_checkpoint, nbits=2, progress=False)
    search._ensure_loaded()  # model + index loading is part of the fixture, not of the first test using it
    return search
