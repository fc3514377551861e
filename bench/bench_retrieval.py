"""Retrieval quality and cost: ColBERT (colbert-ai PLAID) vs BM25 (bm25s) vs dense MiniLM, in one run.

    .venv/bin/python bench/bench_retrieval.py                          # full 54k corpus, 300 questions (slow on CPU)
    .venv/bin/python bench/bench_retrieval.py --corpus-size 3000 --limit 200   # quick: a sub-corpus
    .venv/bin/python bench/bench_retrieval.py --index multihop --skip dense      # reuse a built 54k index
    options: --checkpoint DIR (default: the trained offline one) --nbits 2 --out results.json

Questions: dev/test records of multihop_corpus/questions_with_context.jsonl.gz (HotpotQA, MuSiQue, 2Wiki) whose
gold titles are all passage titles of the corpus, de-duplicated; never the train records the encoder saw.
A sub-corpus keeps every context passage of the sampled questions (gold + their own distractors) and fills up with
random other passages. Recall@k = share of a question's gold titles among the titles of the top k, averaged.
Latency: one query at a time, wall clock, after a warm-up. Memory: resident-set growth while loading the index,
and the index's own size (ColBERT: on disk; BM25: its sparse arrays; dense: the embedding matrix).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentdistill  # noqa: E402,F401  (offline defaults)
from agentdistill.tools.retrieval.checkpoint import default_data_dir, resolve_checkpoint  # noqa: E402
from agentdistill.tools.retrieval.corpus import read_corpus  # noqa: E402

KS = (1, 5, 20)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_questions(data_dir: Path, titles: set[str], limit: int, seed: int) -> list[dict]:
    out, seen = [], set()
    with gzip.open(data_dir / "questions_with_context.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            key = re.sub(r"\W+", " ", r["question"].lower()).strip()
            if r["split"] == "train" or r.get("evidence_only") or not r["gold_titles"] or key in seen:
                continue
            if not all(t.lower() in titles for t in r["gold_titles"]):
                continue
            seen.add(key)
            out.append(r)
    random.Random(seed).shuffle(out)
    return out[:limit]


def sub_corpus(passages, questions, size: int, seed: int):
    if size >= len(passages):
        return passages
    keep = {c for q in questions for c in q["context_passage_ids"]}
    chosen = [p for p in passages if p.id in keep]
    rest = [p for p in passages if p.id not in keep]
    random.Random(seed).shuffle(rest)
    chosen += rest[: max(0, size - len(chosen))]
    return sorted(chosen, key=lambda p: p.id)


def evaluate(name, search_fn, questions, warmup: int = 3) -> dict:
    for q in questions[:warmup]:
        search_fn(q["question"], max(KS))
    recalls = {k: [] for k in KS}
    latencies = []
    for q in questions:
        start = time.perf_counter()
        hits = search_fn(q["question"], max(KS))
        latencies.append(1000 * (time.perf_counter() - start))
        gold = {t.lower() for t in q["gold_titles"]}
        for k in KS:
            found = {h.title.lower() for h in hits[:k]} & gold
            recalls[k].append(len(found) / len(gold))
    latencies.sort()
    return {"system": name, **{f"R@{k}": statistics.mean(recalls[k]) for k in KS},
            "p50_ms": statistics.median(latencies), "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--corpus-size", type=int, default=10**9, help="passages to index (default: all 54,068)")
    parser.add_argument("--limit", type=int, default=300, help="questions to evaluate")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--index", default=None,
                        help="use this built ColBERT index (`agentdistill index build`) over the same passages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated systems to skip: bm25,dense,colbert")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stderr)
    data_dir = Path(args.data_dir)
    all_passages = read_corpus(data_dir / "passages.jsonl.gz")
    questions = load_questions(data_dir, {p.title.lower() for p in all_passages}, args.limit, args.seed)
    passages = sub_corpus(all_passages, questions, args.corpus_size, args.seed)
    del all_passages
    by_dataset = {d: sum(q["dataset"] == d for q in questions) for d in sorted({q["dataset"] for q in questions})}
    console.print(f"{len(passages):,} passages, {len(questions)} questions {by_dataset}")

    results, costs = [], {}
    if "bm25" not in skip:
        from agentdistill.tools.retrieval.baselines import BM25Search

        before, start = rss_mb(), time.perf_counter()
        bm25 = BM25Search(passages)
        size = sum(a.nbytes for a in bm25.index.scores.values() if hasattr(a, "nbytes")) / 2**20
        costs["BM25 (bm25s)"] = dict(build_s=time.perf_counter() - start, rss_mb=rss_mb() - before, index_mb=size)
        results.append(evaluate("BM25 (bm25s)", bm25.search, questions))
        console.print(results[-1])
        del bm25
    if "dense" not in skip:
        from agentdistill.tools.retrieval.baselines import DenseSearch

        before, start = rss_mb(), time.perf_counter()
        dense = DenseSearch(passages, show_progress=True)
        costs["dense MiniLM"] = dict(build_s=time.perf_counter() - start, rss_mb=rss_mb() - before,
                                     index_mb=dense.embeddings.nbytes / 2**20)
        results.append(evaluate("dense MiniLM", dense.search, questions))
        console.print(results[-1])
        del dense
    if "colbert" not in skip:
        import hashlib

        from agentdistill.tools.retrieval import ColBERTSearch

        start = time.perf_counter()
        if args.index:
            colbert = ColBERTSearch(args.index)  # loaded below, where its memory is measured
            if colbert.manifest["n_passages"] != len(passages):
                raise SystemExit(f"index {args.index!r} holds {colbert.manifest['n_passages']:,} passages, the "
                                 f"bench corpus {len(passages):,}: drop --index or match --corpus-size")
            reused = True
        else:
            checkpoint = resolve_checkpoint(args.checkpoint)
            tag = hashlib.sha256(("|".join(p.id for p in passages) + checkpoint).encode()).hexdigest()[:10]
            colbert = ColBERTSearch.build(passages, name=f"bench-{len(passages)}-{tag}", checkpoint=checkpoint,
                                          nbits=args.nbits)
            reused = time.perf_counter() - start < 0.5 * colbert.manifest["build_seconds"]
        checkpoint = colbert.manifest["checkpoint"]
        before = rss_mb()
        colbert._ensure_loaded()
        disk = sum(f.stat().st_size for f in colbert.path.iterdir() if f.suffix in (".pt", ".json")) / 2**20
        costs["ColBERT (PLAID)"] = dict(build_s=colbert.manifest["build_seconds"], rss_mb=rss_mb() - before,
                                        index_mb=disk, reused_index=reused, checkpoint=checkpoint,
                                        num_partitions=colbert.manifest["num_partitions"],
                                        num_embeddings=colbert.manifest["num_embeddings"])
        results.append(evaluate("ColBERT (PLAID)", colbert.search, questions))
        console.print(results[-1])

    base = results[0]
    table = Table(title=f"retrieval on {len(passages):,} passages, {len(questions)} held-out questions "
                        f"(ratios vs {base['system']})")
    for col in ("system", "R@1", "R@5", "R@20", "R@5 ratio", "p50 ms", "p99 ms", "build s", "RSS MB", "index MB"):
        table.add_column(col)
    for r in results:
        c = costs[r["system"]]
        table.add_row(r["system"], f"{r['R@1']:.3f}", f"{r['R@5']:.3f}", f"{r['R@20']:.3f}",
                      f"{r['R@5'] / base['R@5']:.2f}x", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      f"{c['build_s']:.1f}", f"{c['rss_mb']:.0f}", f"{c['index_mb']:.1f}")
    Console(width=160).print(table)
    report = dict(passages=len(passages), questions=len(questions), by_dataset=by_dataset, results=results,
                  costs=costs, torch_threads=__import__("torch").get_num_threads(), cpu_count=os.cpu_count())
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
