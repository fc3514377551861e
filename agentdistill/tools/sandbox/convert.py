"""Turn values produced inside the sandbox into plain JSON-able data (and short reprs).

Tool arguments, tool results and `final_answer(x)` cross the process boundary as JSON, so whatever the
agent's code holds (numpy scalars, sympy expressions, tuples, sets, fractions) is converted here:
numbers stay numbers, containers become lists/dicts, anything else becomes its `str()`.

    to_plain(numpy.float64(0.5)) -> 0.5 ; to_plain(sympy.sqrt(2)) -> "sqrt(2)" ; to_plain((1, 2)) -> [1, 2]
"""

from __future__ import annotations

import math
import numbers
from typing import Any

MAX_DEPTH = 20
MAX_ITEMS = 10_000
MAX_STR = 100_000


def _number(x: Any) -> Any:
    """Python number for int/float-like objects (numpy scalars, sympy Integer/Float), else None."""
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)  # JSON has no nan/inf
    mod = type(x).__module__ or ""
    if mod.startswith("numpy"):
        item = getattr(x, "item", None)
        if item is not None and getattr(x, "ndim", 1) == 0:
            v = item()
            return _number(v) if isinstance(v, (bool, int, float)) else None
        return None
    if mod.startswith("sympy"):
        # exact integers stay integers; anything else (Rational, sqrt(2), pi) keeps its exact str form
        if getattr(x, "is_Integer", False):
            return int(x)
        if getattr(x, "is_Float", False):
            return _number(float(x))
        return None
    if isinstance(x, numbers.Integral):
        return int(x)
    return None


def to_plain(x: Any, _depth: int = 0, max_str: int | None = MAX_STR) -> Any:
    """JSON-able copy of `x`: None/bool/int/float/str, lists and dicts with str keys; str() for the rest.

    Strings longer than `max_str` are cut (None: kept whole, e.g. for tool arguments, which are size-checked
    as a whole instead)."""
    if x is None or isinstance(x, (bool, int, str)):
        if isinstance(x, str):
            return x if max_str is None else x[:max_str]
        return x if isinstance(x, bool) or x is None else int(x)
    if _depth > MAX_DEPTH:
        return _short_str(x)
    n = _number(x)
    if n is not None:
        return n
    if isinstance(x, bytes):
        return (x if max_str is None else x[:max_str]).decode("utf-8", "replace")
    if isinstance(x, dict):
        return {str(to_plain(k, _depth + 1, max_str)) if not isinstance(k, str) else k:
                to_plain(v, _depth + 1, max_str) for k, v in list(x.items())[:MAX_ITEMS]}
    if isinstance(x, (list, tuple)):
        return [to_plain(v, _depth + 1, max_str) for v in list(x)[:MAX_ITEMS]]
    if isinstance(x, (set, frozenset)):
        items = [to_plain(v, _depth + 1, max_str) for v in list(x)[:MAX_ITEMS]]
        try:
            return sorted(items)
        except TypeError:
            return items
    mod = type(x).__module__ or ""
    if mod.startswith("numpy") and hasattr(x, "tolist") and getattr(x, "size", MAX_ITEMS + 1) <= MAX_ITEMS:
        return to_plain(x.tolist(), _depth + 1, max_str)
    return _short_str(x)


def _short_str(x: Any) -> str:
    try:
        s = str(x)
    except Exception as e:  # a hostile __str__ must not break the runtime
        s = f"<unprintable {type(x).__name__}: {type(e).__name__}>"
    return s[:MAX_STR]


def short_repr(x: Any, limit: int) -> str:
    """repr(x) cut to `limit` characters (with a note), robust to broken __repr__."""
    try:
        s = repr(x)
    except Exception as e:
        s = f"<unrepresentable {type(x).__name__}: {type(e).__name__}: {e}>"
    if len(s) > limit:
        s = s[:limit] + f"... [repr truncated: {len(s) - limit} more characters]"
    return s
