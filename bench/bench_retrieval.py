"""Retrieval quality and cost: the hybrid (BM25 + ColBERT) vs ColBERT alone vs BM25 vs dense, in one run.

    .venv/bin/python bench/bench_retrieval.py --index multihop --json results/retrieval.json   # the README table
    .venv/bin/python bench/bench_retrieval.py --corpus-size 3000 --limit 200   # quick: builds a sub-corpus index
    options: --checkpoint DIR (default: the shipped offline one) --nbits 2 --skip dense --tune 100

Questions: dev/test records of multihop_corpus/questions_with_context.jsonl.gz (HotpotQA, MuSiQue, 2Wiki) whose
gold titles are all passage titles of the corpus, de-duplicated; never the train records the encoder saw. The first
`--limit` (shuffled, seed 0) are evaluated; the next `--tune` pick the hybrid's fusion, depth and weight (so the
evaluated questions never choose the setting they are scored with). A sub-corpus keeps every context passage of the
sampled questions (gold + their own distractors) and fills up with random other passages.
Recall@k = share of a question's gold titles among the titles of the top k, averaged; R@5 differences are paired
(same questions) with a 95% interval. Latency: the agent's tool call end to end (query -> formatted text of 5
passages), one at a time, after a warm-up. Memory: resident-set growth while loading each system.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
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
from agentdistill.tools.retrieval import ColBERTSearch  # noqa: E402
from agentdistill.tools.retrieval.corpus import read_corpus  # noqa: E402

KS = (1, 5, 20)
FUSION_GRID = [dict(fusion=f, depth=d, weight=w) for d in (20, 50, 100)
               for f, w in (("linear", 0.3), ("linear", 0.5), ("linear", 0.7), ("rrf", 0.5), ("rerank", 0.5))]


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


def evaluate(name, search, questions, warmup: int = 3) -> dict:
    """Recall@k per question (for pairing), means overall and per dataset, and tool-call latency."""
    tool = search.as_tool(k=5)
    for q in questions[:warmup]:
        tool(q["question"])
    per_question = {k: [] for k in KS}
    latencies = []
    for q in questions:
        hits = search.search(q["question"], k=max(KS))
        gold = {t.lower() for t in q["gold_titles"]}
        for k in KS:
            per_question[k].append(len({h.title.lower() for h in hits[:k]} & gold) / len(gold))
        start = time.perf_counter()
        tool(q["question"])
        latencies.append(1000 * (time.perf_counter() - start))
    latencies.sort()
    datasets = sorted({q["dataset"] for q in questions})
    by_dataset = {d: {f"R@{k}": statistics.mean(r for r, q in zip(per_question[k], questions) if q["dataset"] == d)
                      for k in KS} for d in datasets}
    return {"system": name, **{f"R@{k}": statistics.mean(per_question[k]) for k in KS}, "by_dataset": by_dataset,
            "p50_ms": statistics.median(latencies), "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "recall5": per_question[5]}


def tune_hybrid(index, questions, console) -> dict:
    """The fusion setting with the best mean R@5 on the tuning questions (ties: the cheaper, smaller depth)."""
    from agentdistill.tools.retrieval import HybridSearch

    hybrid = HybridSearch.load(index)
    scores = []
    for setting in FUSION_GRID:
        hybrid.fusion, hybrid.depth, hybrid.weight = setting["fusion"], setting["depth"], setting["weight"]
        r5 = statistics.mean(len({h.title.lower() for h in hybrid.search(q["question"], k=5)}
                                 & {t.lower() for t in q["gold_titles"]}) / len(q["gold_titles"]) for q in questions)
        scores.append(dict(setting, R5=r5))
        console.print(f"  tune {setting}: R@5 {r5:.3f}")
    best = max(scores, key=lambda s: (round(s["R5"], 6), -s["depth"]))
    return {"best": {k: best[k] for k in ("fusion", "depth", "weight")}, "grid": scores, "questions": len(questions)}


def machine() -> dict:
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else ""), "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": os.getloadavg()}


def main(argv=None) -> int:
    from agentdistill.benchmarks.stats import paired_difference

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--corpus-size", type=int, default=10**9, help="passages to index (default: all 54,068)")
    parser.add_argument("--limit", type=int, default=300, help="questions to evaluate")
    parser.add_argument("--tune", type=int, default=100, help="further questions that pick the hybrid's setting")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--index", default=None,
                        help="use this built ColBERT index (`agentdistill index build`) over the same passages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated systems to skip: bm25,dense,colbert,hybrid")
    parser.add_argument("--json", "--out", dest="out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stderr)
    info = machine()
    data_dir = Path(args.data_dir)
    all_passages = read_corpus(data_dir / "passages.jsonl.gz")
    pool = load_questions(data_dir, {p.title.lower() for p in all_passages}, args.limit + args.tune, args.seed)
    questions, tuning = pool[:args.limit], pool[args.limit:]
    passages = sub_corpus(all_passages, pool, args.corpus_size, args.seed)
    del all_passages
    by_dataset = {d: sum(q["dataset"] == d for q in questions) for d in sorted({q["dataset"] for q in questions})}
    console.print(f"{len(passages):,} passages, {len(questions)} questions {by_dataset}, {len(tuning)} tuning")

    # ColBERT's index first: BM25 and the hybrid run over its passages (the same numbering)
    start = time.perf_counter()
    if args.index:
        colbert = ColBERTSearch(args.index)
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

    results, costs = [], {}

    def measure(name, load, index_mb=None):
        before, t0 = rss_mb(), time.perf_counter()
        system = load()
        costs[name] = dict(load_s=time.perf_counter() - t0, rss_mb=rss_mb() - before)
        if index_mb is not None:
            costs[name]["index_mb"] = index_mb(system)
        results.append(evaluate(name, system, questions))
        console.print({k: v for k, v in results[-1].items() if k != "recall5"})
        return system

    if "bm25" not in skip:
        from agentdistill.tools.retrieval import BM25Search

        measure("BM25 (bm25s)", lambda: BM25Search(colbert.passages),
                lambda s: sum(a.nbytes for a in s.index.scores.values() if hasattr(a, "nbytes")) / 2**20)
    if "dense" not in skip:
        from agentdistill.tools.retrieval.baselines import DenseSearch

        measure("dense MiniLM", lambda: DenseSearch(colbert.passages, show_progress=True),
                lambda s: s.embeddings.nbytes / 2**20)
    disk = sum(f.stat().st_size for f in colbert.path.iterdir() if f.suffix in (".pt", ".json")) / 2**20
    if "colbert" not in skip:
        measure("ColBERT (PLAID)", lambda: (colbert._ensure_loaded(), colbert)[1], lambda s: disk)
    tuned = None
    if "hybrid" not in skip:
        from agentdistill.tools.retrieval import HybridSearch

        tuned = tune_hybrid(colbert.path, tuning, console) if tuning else {"best": {}, "grid": [], "questions": 0}
        best = tuned["best"]
        measure(f"hybrid ({best.get('fusion', 'linear')})", lambda: HybridSearch.load(colbert.path, **best),
                lambda s: disk)
    costs.setdefault("ColBERT (PLAID)", {}).update(
        build_s=colbert.manifest["build_seconds"], reused_index=reused, checkpoint=colbert.manifest["checkpoint"],
        num_partitions=colbert.manifest["num_partitions"], num_embeddings=colbert.manifest["num_embeddings"],
        index_mb=disk)

    base = results[0]
    for r in results:
        r["R@5 vs first"] = paired_difference(r["recall5"], base["recall5"])
    table = Table(title=f"retrieval on {len(passages):,} passages, {len(questions)} held-out questions "
                        f"(ratios vs {base['system']}, load {os.getloadavg()[0]:.1f})")
    for col in ("system", "R@1", "R@5", "R@20", "R@5 ratio", "R@5 diff (95% CI)", "p50 ms", "p99 ms", "RSS MB"):
        table.add_column(col)
    for r in results:
        d = r["R@5 vs first"]
        table.add_row(r["system"], f"{r['R@1']:.3f}", f"{r['R@5']:.3f}", f"{r['R@20']:.3f}",
                      f"{r['R@5'] / base['R@5']:.2f}x", f"{d['difference']:+.3f} ({d['low']:+.3f}, {d['high']:+.3f})",
                      f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{costs[r['system']].get('rss_mb', 0):.0f}")
    Console(width=160).print(table)
    info["load_average_end"] = os.getloadavg()
    report = dict(passages=len(passages), questions=len(questions), by_dataset=by_dataset,
                  eligible_questions=len(pool), results=results, costs=costs, tuning=tuned,
                  torch_threads=__import__("torch").get_num_threads(), machine=info,
                  settings=dict(limit=args.limit, tune=args.tune, seed=args.seed, nbits=args.nbits,
                                corpus_size=len(passages)))
    if args.out:
        report["name"] = Path(args.out).stem
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
