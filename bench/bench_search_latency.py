"""Where one search's time goes: query encoding (the ColBERT encoder over the query's tokens) vs PLAID's search vs
the tool call end to end (hybrid: + BM25 and the fusion), one query at a time, after a warm-up.

    .venv/bin/python bench/bench_search_latency.py --index multihop --json results/search_latency.json
    .venv/bin/python bench/bench_search_latency.py --index ~/.cache/agentdistill/indexes/bench-4000-<key>   # quick

Questions: the first `--limit` HotpotQA test questions (any question works: latency, not recall). Encoding is also
timed on one thread, the number a machine running other work gets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval import machine  # noqa: E402


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2)}


def main(argv=None) -> int:
    import torch

    from agentdistill.benchmarks import load_benchmark
    from agentdistill.tools.retrieval import ColBERTSearch
    from agentdistill.tools.retrieval.colbert_search import _plaid_params
    from agentdistill.tools.retrieval.search_tool import open_search

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="index name or folder")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    info = machine()
    questions = [e.question for e in load_benchmark("hotpotqa", limit=args.limit)]
    colbert = ColBERTSearch.load(args.index)
    hybrid = open_search(colbert.path, k=args.k)
    searcher = colbert._searcher
    searcher.configure(**_plaid_params(args.k))
    for q in questions[:3]:  # warm-up
        hybrid(q)
    timings: dict[str, list[float]] = {"encode": [], "plaid_search": [], "colbert_tool": [], "hybrid_tool": [],
                                       "encode_1_thread": []}
    tool = colbert.as_tool(k=args.k)
    for q in questions:  # interleaved per query, so load changes hit every column alike
        t0 = time.perf_counter()
        Q = searcher.encode(q)
        t1 = time.perf_counter()
        searcher.dense_search(Q, args.k)
        t2 = time.perf_counter()
        tool(q)
        t3 = time.perf_counter()
        hybrid(q)
        t4 = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t5 = time.perf_counter()
        searcher.encode(q)
        t6 = time.perf_counter()
        torch.set_num_threads(threads)
        for key, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t6 - t5)):
            timings[key].append(dt)
    info["load_average_end"] = os.getloadavg()
    out = {"name": "search_latency", "index": str(colbert.path), "passages": len(colbert.passages),
           "queries": len(questions), "k": args.k, "torch_threads": torch.get_num_threads(),
           "timings": {k: percentiles(v) for k, v in timings.items()}, "machine": info}
    for key, row in out["timings"].items():
        print(f"{key:16s} p50 {row['p50_ms']:8.2f} ms   p99 {row['p99_ms']:8.2f} ms")
    print(f"{out['passages']} passages, {len(questions)} queries; load average {info['load_average_start']} -> "
          f"{info['load_average_end']} on {info['cpu_count']} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
