"""Confidence intervals for accuracy figures: every rate the project reports carries n and a 95% interval.

    from agentdistill.benchmarks.stats import wilson, paired_difference
    wilson(13, 72)                       # {"rate": 0.181, "low": 0.109, "high": 0.284, "n": 72, "k": 13}
    paired_difference([1, 0, 1], [0, 0, 1])   # difference of two rates on the SAME questions, with its interval

Wilson's score interval stays inside [0, 1] and behaves at 0/n and n/n, where the normal approximation does not.
The paired difference uses the per-question differences (Newcombe's method 10 would need the discordant counts
only; the normal interval on paired differences is what a reader can recompute from the per-question JSONL).
"""

from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> dict:
    """Rate k/n with Wilson's 95% score interval."""
    if n <= 0:
        raise ValueError(f"wilson() needs n > 0 trials, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"wilson() needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"rate": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "n": n, "k": k}


def paired_difference(a: Sequence[float], b: Sequence[float], z: float = Z95) -> dict:
    """Mean of a - b over the same questions (per-question scores in [0, 1]), with a normal 95% interval."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference() needs two equal, non-empty lists (got {len(a)} and {len(b)})")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return {"difference": mean, "low": mean - half, "high": mean + half, "n": n,
            "a_only": sum(1 for x in d if x > 0), "b_only": sum(1 for x in d if x < 0)}
