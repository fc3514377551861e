"""Benchmark the sandboxed executor against in-process exec and a fresh `python -c` per action.

    .venv/bin/python bench/bench_sandbox.py            # ~30 s; --quick for fewer repetitions

Goals (issue 3): episode start p50 <= 15 ms; step `x = 1 + 1; print(x)` p50 <= 1 ms without the rollback
snapshot and <= 5 ms with it; 8 candidates forked + run + one kept p50 <= 50 ms. Figures are wall-clock
medians on this machine in this run (noisy on a shared machine: compare the ratios; the load average is
printed before and after, quote it with the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentdistill.tools.sandbox import Sandbox  # noqa: E402

STEP = "x = 1 + 1; print(x)"
THINK = 0.05  # idle time between calls in the "apart" rows (a small model takes far longer per action)


def timed(fn, n: int, think_s: float = 0.0) -> list[float]:
    """Wall-clock seconds of n calls; `think_s` idles between calls, as an agent does while its model writes
    the next action (the sandbox uses that time to pre-start workers and pre-fork snapshots)."""
    out = []
    for _ in range(n):
        if think_s:
            time.sleep(think_s)
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p50(xs) -> float:
    return statistics.median(xs) * 1000


def p90(xs) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    k = 4 if args.quick else 1
    rows = []
    load_before = os.getloadavg()

    ns: dict = {}

    def in_process():
        with contextlib.redirect_stdout(io.StringIO()):
            exec(STEP, ns)

    rows.append(("in-process exec (no isolation)", timed(in_process, 2000 // k), None))
    rows.append(("fresh `python -c` per action", timed(
        lambda: subprocess.run([sys.executable, "-c", STEP], capture_output=True, check=True), 20 // k), None))
    rows.append(("fresh `python -c` + import numpy, sympy", timed(
        lambda: subprocess.run([sys.executable, "-c", "import numpy, sympy; " + STEP], capture_output=True,
                               check=True), max(3 // k, 2)), None))

    t = time.perf_counter()
    sb = Sandbox(timeout=10.0)
    start_server = time.perf_counter() - t
    try:
        print(f"isolation: {sb.isolation.level} {sb.isolation.to_dict()}")
        def start():
            episodes.append(sb.episode())

        episodes: list = []
        rows.append(("sandbox: episode start, back to back", timed(start, 30 // k), None))
        for e in episodes:
            e.close()
        episodes.clear()
        rows.append((f"sandbox: episode start, {THINK * 1000:.0f} ms apart", timed(start, 40 // k, THINK), 15))
        for e in episodes:
            e.close()
        ep = sb.episode()
        ep.run("import numpy as np")
        rows.append(("sandbox: step, no snapshot", timed(lambda: ep.run(STEP, snapshot=False), 400 // k), 1))
        rows.append(("sandbox: step + snapshot, back to back", timed(lambda: ep.run(STEP), 100 // k), None))
        rows.append((f"sandbox: step + snapshot, {THINK * 1000:.0f} ms apart", timed(lambda: ep.run(STEP), 100 // k,
                                                                                     THINK), 5))

        def fork8():
            forks = ep.fork(8)
            for i, f in enumerate(forks):
                f.run(f"y = {i}; print(y)", snapshot=False)
            ep.adopt(forks[3])

        rows.append(("sandbox: fork 8 + run each + keep one", timed(fork8, 30 // k), 50))
        ep.close()
    finally:
        sb.close()

    load_after = os.getloadavg()
    base = p50(rows[0][1])
    cold = p50(rows[1][1])
    print(f"\nload average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} cores")
    print(f"fork server start (imports numpy+sympy once): {start_server * 1000:.0f} ms\n")
    print(f"{'':44s} {'p50 ms':>9s} {'p90 ms':>9s} {'x in-proc':>10s} {'x python -c':>12s} {'goal ms':>8s}")
    for name, xs, goal in rows:
        ok = "" if goal is None else (f"{goal:>6} " + ("ok" if p50(xs) <= goal else "MISSED"))
        print(f"{name:44s} {p50(xs):9.3f} {p90(xs):9.3f} {p50(xs) / base:10.1f} {p50(xs) / cold:12.3f} {ok:>8s}")


if __name__ == "__main__":
    main()
