"""colbert-ai 0.2.22 on this stack (transformers 5.24, torch 2.13, CPU): the ONE compatibility layer.

The project keeps transformers 5.24 (trl 1.16 and the dspy stack need it) and makes colbert-ai work here, with
the smallest set of patches, all in this file, all applied by `ensure_colbert()` (idempotent) before any colbert
object is made. What each patch is for:

1. `HF_ColBERT.__init__` ends with `self.init_weights()`. In transformers 5 the model must run `post_init()`
   first (it registers `all_tied_weights_keys` etc.), and `post_init()` itself calls `init_weights()`. We wrap
   the class that `colbert.modeling.hf_colbert.class_factory` returns: the first `init_weights()` call (from
   colbert's `__init__`, before post_init ran) becomes `post_init()`; later calls are the normal ones.
2. C++ extensions (segmented_maxsim, filter_pids, decompress_residuals, segmented_lookup) are compiled by
   `torch.utils.cpp_extension.load` at first use with ninja + gcc. We point `TORCH_EXTENSIONS_DIR` at a cache
   keyed by the torch version (default `agentdistill.settings.home()/torch_extensions/`, once per machine,
   ~20 s per extension) and put the venv's `ninja` on PATH if the system has none.
3. CUDA assumptions. colbert's `Launcher` spawns worker processes (our patches would not exist there) and its
   training wraps the model in `DistributedDataParallel(device_ids=[rank])`, which fails for CPU modules without
   a process group. `run_config()` sets `avoid_fork_if_possible=True` (one process, no spawn) and
   `single_process_training()` swaps DDP for a pass-through wrapper with the same `.module` attribute, sends
   the checkpoint to our folder (colbert derives it from `__main__.__file__`, which is not a .py under a console
   script) and reports each step to a callback (progress bars). AMP is CUDA-only: callers set `amp=False`.
4. Noise: colbert calls the deprecated `torch.cuda.amp` API even on CPU; those FutureWarnings are filtered.

On GPU machines nothing here changes colbert's behaviour except (3), which only applies when nranks == 1.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

_PATCHED = False


def extensions_dir() -> Path:
    """Where the compiled colbert C++ extensions are cached (one folder per torch version)."""
    import torch

    from agentdistill.settings import home

    return home() / "torch_extensions" / f"torch-{torch.__version__}"


EXTENSIONS = ("decompress_residuals_cpp", "filter_pids_cpp", "segmented_lookup_cpp", "segmented_maxsim_cpp")


def missing_extensions(directory: Path) -> list[str]:
    """colbert-ai's C++ extensions (compiled by torch at first use) that `directory` does not hold built yet."""
    return [name for name in EXTENSIONS if not any((Path(directory) / name).glob("*.so"))]


def ensure_colbert() -> None:
    """Apply the patches above (once per process). Call before importing colbert's Indexer/Searcher/Trainer."""
    global _PATCHED
    if _PATCHED:
        return
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(extensions_dir()))
    Path(os.environ["TORCH_EXTENSIONS_DIR"]).mkdir(parents=True, exist_ok=True)
    if missing := missing_extensions(Path(os.environ["TORCH_EXTENSIONS_DIR"])):
        # the first search or build compiles them silently for minutes: say so
        print(f"colbert-ai compiles its C++ extensions once ({', '.join(missing)}; a few minutes on 2 CPU cores) "
              f"into {os.environ['TORCH_EXTENSIONS_DIR']} ...", file=sys.stderr, flush=True)
    if shutil.which("ninja") is None:  # torch's cpp_extension runs `ninja --version` from PATH
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.cuda\.amp.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*CUDA is not available.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*GradScaler is enabled, but CUDA.*")

    import colbert.modeling.base_colbert as base_colbert
    import colbert.modeling.hf_colbert as hf_colbert

    original_factory = hf_colbert.class_factory

    def class_factory(name_or_path):
        cls = original_factory(name_or_path)
        pretrained_init_weights = cls.init_weights

        def init_weights(self):
            if "all_tied_weights_keys" not in self.__dict__:  # called from colbert's __init__: post_init not run yet
                return self.post_init()  # ...which calls init_weights() again, reaching the branch below
            return pretrained_init_weights(self)

        cls.init_weights = init_weights
        return cls

    hf_colbert.class_factory = class_factory
    base_colbert.class_factory = class_factory  # imported by name there
    _PATCHED = True


def run_config(**overrides):
    """A colbert RunConfig for this process: one rank, no spawned workers when there is no multi-GPU job."""
    ensure_colbert()
    import torch
    from colbert.infra import RunConfig

    gpus = torch.cuda.device_count()
    settings = dict(nranks=max(1, gpus), gpus=gpus, avoid_fork_if_possible=gpus <= 1, amp=gpus > 0)
    settings.update(overrides)
    return RunConfig(**settings)


class _PassThroughDDP:
    """Stands in for DistributedDataParallel in a single CPU process: calls go to `.module` unchanged."""

    def __new__(cls, module, *args, **kwargs):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.module = inner

            def forward(self, *a, **k):
                return self.module(*a, **k)

        return Wrapper(module)


@contextlib.contextmanager
def single_process_training(checkpoint_dir: str | Path, on_step=None):
    """Run `colbert.training.training.train` in this process (patch 3). `on_step(step)` is called each step."""
    ensure_colbert()
    import torch
    import colbert.training.training as training

    original_ddp = torch.nn.parallel.DistributedDataParallel
    original_manage = training.manage_checkpoints

    def manage_checkpoints(args, colbert, optimizer, batch_idx, savepath=None, consumed_all_triples=False):
        if on_step is not None and not consumed_all_triples:
            on_step(batch_idx)
        return original_manage(args, colbert, optimizer, batch_idx, savepath=str(checkpoint_dir),
                               consumed_all_triples=consumed_all_triples)

    torch.nn.parallel.DistributedDataParallel = _PassThroughDDP
    training.manage_checkpoints = manage_checkpoints
    try:
        yield training.train
    finally:
        torch.nn.parallel.DistributedDataParallel = original_ddp
        training.manage_checkpoints = original_manage


@contextlib.contextmanager
def quiet(log_path: str | Path | None, fd: bool = False):
    """Send colbert's chatty prints and tqdm bars (and with `fd=True` faiss's C-level stdout) to a log file.

    Rich progress bars stay visible when their Console was given the real stderr before entering (see
    `progress_console()`). `fd=True` swaps file descriptor 1: for command-line use, not inside test runners.
    """
    if log_path is None:
        yield
        return
    from transformers.utils import logging as hf_logging

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its handler holds the original stderr: "LOAD REPORT" tables would leak
    with open(log_path, "a") as log:
        sys.stdout.flush()
        saved_fd = os.dup(1) if fd else None
        if fd:
            os.dup2(log.fileno(), 1)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            log.flush()
            if fd:
                os.dup2(saved_fd, 1)
                os.close(saved_fd)
            hf_logging.set_verbosity(verbosity)


def progress_console():
    """A rich Console bound to the current stderr object (unaffected by `quiet`'s redirection)."""
    from rich.console import Console

    return Console(file=sys.stderr)


@contextlib.contextmanager
def encoding_progress(on_passages):
    """Report how many passages colbert's indexer has encoded (`on_passages(n)` per block of ~1,600), for progress
    bars. Indexing encodes the k-means sample first, then every passage."""
    ensure_colbert()
    from colbert.modeling.checkpoint import Checkpoint

    original = Checkpoint.docFromText

    def doc_from_text(self, docs, *args, **kwargs):
        out = original(self, docs, *args, **kwargs)
        on_passages(len(docs))
        return out

    Checkpoint.docFromText = doc_from_text
    try:
        yield
    finally:
        Checkpoint.docFromText = original


@contextlib.contextmanager
def chunk_size(passages: int):
    """colbert saves an index in chunks of up to 25,000 passages (an hour of encoding on 2 CPU cores); a resumed build
    (ColBERTConfig(resume=True)) keeps whole chunks only, so within the block chunks hold at most `passages`."""
    ensure_colbert()
    from colbert.data.collection import Collection

    original = Collection.get_chunksize
    Collection.get_chunksize = lambda self: min(passages, original(self))
    try:
        yield
    finally:
        Collection.get_chunksize = original


@contextlib.contextmanager
def reuse_sample_encodings():
    """colbert's indexer encodes its k-means sample, then every passage again, the sample included (15% of a 54k
    build on CPU). Within the block, a passage encoded once is not encoded again: its token embeddings (float32
    on CPU, as colbert returns them) are kept from the sample and spliced into the chunk in corpus order."""
    ensure_colbert()
    import torch
    from colbert.indexing.collection_encoder import CollectionEncoder

    original = CollectionEncoder.encode_passages
    seen: dict[str, torch.Tensor] = {}

    def encode_passages(self, passages):
        todo = [p for p in dict.fromkeys(passages) if p not in seen]
        if todo:
            embs, doclens = original(self, todo)
            for text, part in zip(todo, torch.split(embs, list(doclens))):
                seen[text] = part
        if not passages:
            return None, None
        parts = [seen[p] for p in passages]
        return torch.cat(parts), [len(part) for part in parts]

    CollectionEncoder.encode_passages = encode_passages
    try:
        yield
    finally:
        CollectionEncoder.encode_passages = original
        seen.clear()


@contextlib.contextmanager
def indexing_budget(max_sample_passages: int | None = None, max_partitions: int | None = None):
    """Cap the two CPU-heavy choices colbert's indexer makes for a corpus of N passages with E token embeddings.

    colbert samples ~16*sqrt(120*N) passages to train 2**floor(log2(16*sqrt(E))) k-means centroids: for 54k
    passages that is 40k extra passages to encode and 32,768 centroids (tens of minutes of k-means on 2 CPU cores).
    On CPU we sample fewer passages and train fewer centroids; search stays exact in its final stage (PLAID
    re-ranks candidates by full late interaction), fewer centroids mean more candidates per probed cell.
    """
    ensure_colbert()
    import random

    from colbert.indexing.collection_indexer import CollectionIndexer

    original_sample, original_save_plan = CollectionIndexer._sample_pids, CollectionIndexer._save_plan

    def sample_pids(self):
        pids = original_sample(self)
        if max_sample_passages is not None and len(pids) > max_sample_passages:
            pids = set(random.Random(12345).sample(sorted(pids), max_sample_passages))
        return pids

    def save_plan(self):
        if max_partitions is not None:
            self.num_partitions = min(self.num_partitions, max_partitions)
        # k-means needs at least one sample point per centroid (95% of the sample trains, 5% is held out):
        # without this clamp a corpus of a few short passages fails inside faiss.
        n_train = int(0.95 * int(self.num_sample_embs))
        self.num_partitions = max(1, min(self.num_partitions, 2 ** int(math.log2(max(1, n_train)))))
        return original_save_plan(self)

    CollectionIndexer._sample_pids, CollectionIndexer._save_plan = sample_pids, save_plan
    try:
        yield
    finally:
        CollectionIndexer._sample_pids, CollectionIndexer._save_plan = original_sample, original_save_plan
