"""Building a colbert-ai PLAID index folder (used by `ColBERTSearch.build` and `agentdistill index build`).

    build_index("passages.jsonl.gz", Path("~/.cache/agentdistill/indexes/wiki"), nbits=2)

The folder is built under a temporary name (`<name>.partial`) and renamed when complete, so a crash never leaves a
half index that looks whole; building again with the same inputs resumes it (the k-means plan and centroids, and
every finished chunk of 2,000 passages, are kept). Reuse: same corpus bytes (or passages), checkpoint weights and
settings -> the existing folder is kept.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from agentdistill.files import read_json_object
from agentdistill.tools.retrieval.checkpoint import checkpoint_fingerprint, resolve_checkpoint
from agentdistill.tools.retrieval.corpus import CorpusError, Passage, file_fingerprint, read_corpus, write_jsonl

MANIFEST = "agentdistill_index.json"
PARTIAL = "agentdistill_partial.json"  # in <name>.partial: which inputs an unfinished build is of (resumed if equal)
FORMAT_VERSION = 1
CHUNK = 2000  # passages per saved chunk: what an interrupted build loses at most (colbert's default is 25,000)


def _passages_from(corpus) -> tuple[list[Passage], str, str]:
    """(passages, fingerprint of the input, description) for a path or an in-memory list."""
    if isinstance(corpus, (str, Path)):
        return read_corpus(corpus), file_fingerprint(corpus), str(Path(corpus).resolve())
    passages = [p if isinstance(p, Passage) else Passage(str(p.get("id", i)), str(p.get("title") or ""), p.get("text"))
                for i, p in enumerate(corpus)]
    for i, p in enumerate(passages):
        if not isinstance(p.text, str) or not p.text.strip():
            raise CorpusError(f"passage {i} (id {p.id!r}) has no text; every passage needs a non-empty \"text\"")
    if not passages:
        raise CorpusError("the corpus is empty (no passages); pass at least one passage with a non-empty text")
    digest = hashlib.sha256(json.dumps([[p.id, p.title, p.text] for p in passages]).encode()).hexdigest()
    return passages, digest, f"<{len(passages)} passages in memory>"


def build_index(corpus, index_dir: Path, *, checkpoint: str | None = None, nbits: int = 2, doc_maxlen: int = 180,
                query_maxlen: int = 32, overwrite: bool = False, max_sample_passages: int | None = None,
                max_partitions: int | None = None, progress: bool = True) -> Path:
    """Build (or reuse) a ColBERT index of `corpus` in `index_dir`; returns the folder."""
    import torch

    from agentdistill.tools.retrieval import compat

    if nbits not in (1, 2, 4):
        raise ValueError(f"nbits={nbits}: colbert's residual codec supports 1, 2 or 4 bits per dimension")
    passages, corpus_fp, corpus_desc = _passages_from(corpus)
    checkpoint = resolve_checkpoint(checkpoint)
    on_cpu = torch.cuda.device_count() == 0
    if on_cpu:  # see compat.indexing_budget: k-means at colbert's GPU sizes takes tens of minutes on 2 cores
        max_sample_passages = max_sample_passages or min(8000, max(1000, len(passages) // 5))
        max_partitions = max_partitions or 4096
    settings = dict(nbits=nbits, doc_maxlen=doc_maxlen, query_maxlen=query_maxlen,
                    max_sample_passages=max_sample_passages, max_partitions=max_partitions)
    fingerprint = hashlib.sha256(json.dumps(
        [FORMAT_VERSION, corpus_fp, checkpoint_fingerprint(checkpoint), settings], sort_keys=True).encode()).hexdigest()

    index_dir = Path(index_dir).expanduser().resolve()
    manifest_path = index_dir / MANIFEST
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("fingerprint") == fingerprint:
            return index_dir  # same inputs: reuse
        if not overwrite:
            raise IndexExistsError(index_dir, old)
    elif index_dir.exists() and any(index_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{index_dir} exists and is not an agentdistill index; pick another name or pass "
                              "overwrite=True (--overwrite) to replace it")

    partial = index_dir.with_name(index_dir.name + ".partial")
    resume = read_json_object(partial / PARTIAL).get("fingerprint") == fingerprint  # interrupted, same inputs
    if not resume:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (partial / PARTIAL).write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    start = time.perf_counter()
    _run_colbert_indexer(passages, partial, checkpoint, settings, progress, resume=resume)
    write_jsonl(passages, partial / "passages.jsonl")
    manifest = dict(format=FORMAT_VERSION, fingerprint=fingerprint, corpus=corpus_desc, corpus_sha256=corpus_fp,
                    n_passages=len(passages), checkpoint=checkpoint, **settings,
                    build_seconds=round(time.perf_counter() - start, 1), built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                    device="cpu" if on_cpu else "cuda")
    meta = json.loads((partial / "metadata.json").read_text())
    manifest.update(num_partitions=meta["num_partitions"], num_embeddings=meta["num_embeddings"],
                    avg_doclen=round(meta["avg_doclen"], 1))
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (partial / PARTIAL).unlink(missing_ok=True)
    if index_dir.exists():
        shutil.rmtree(index_dir)
    partial.rename(index_dir)
    return index_dir


class IndexExistsError(FileExistsError):
    """An index of that name exists and was built from other inputs."""

    def __init__(self, index_dir: Path, old: dict):
        super().__init__(
            f"index {index_dir.name!r} at {index_dir} was built from other inputs (corpus {old.get('corpus')}, "
            f"checkpoint {old.get('checkpoint')}, nbits {old.get('nbits')}); pass overwrite=True (--overwrite) to "
            "rebuild it, or choose another name"
        )


def _run_colbert_indexer(passages: list[Passage], folder: Path, checkpoint: str, settings: dict, progress: bool,
                         resume: bool = False):
    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert import Indexer
    from colbert.infra import ColBERTConfig, Run
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from agentdistill.progress import Progress

    n = len(passages)
    config = ColBERTConfig(nbits=settings["nbits"], doc_maxlen=settings["doc_maxlen"],
                           query_maxlen=settings["query_maxlen"], index_path=str(folder), kmeans_niters=4,
                           index_bsize=32)
    columns = [TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("passages encoded"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, console=compat.progress_console()) as bar:
        task = bar.add_task("encode", total=n, rate="")  # the k-means sample, then the rest (each encoded once)
        start = time.perf_counter()

        def advance(k: int) -> None:
            bar.advance(task, k)
            done = bar.tasks[0].completed
            bar.update(task, rate=f"{done / max(1e-9, time.perf_counter() - start):.1f} passages/s")

        with compat.quiet(folder / "build.log", fd=progress), compat.indexing_budget(settings["max_sample_passages"],
                                                                         settings["max_partitions"]), \
                compat.reuse_sample_encodings(), compat.encoding_progress(advance), compat.chunk_size(CHUNK), \
                Run().context(compat.run_config()):
            try:
                Indexer(checkpoint=checkpoint, config=config, verbose=1).index(
                    name=folder.name, collection=[p.colbert_text() for p in passages],
                    overwrite="resume" if resume else "force_silent_overwrite")
            except RuntimeError as e:
                raise RuntimeError(f"colbert indexing failed ({e}); the log is {folder / 'build.log'}") from e
