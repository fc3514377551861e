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


def to_plain(x: Any, _depth: int = 0, max_str: int | None = MAX_STR, cuts: list | None = None) -> Any:
    """JSON-able copy of `x`: None/bool/int/float/str, lists and dicts with str keys; str() for the rest.

    Strings longer than `max_str` are cut (None: kept whole, e.g. for tool arguments, which are size-checked
    as a whole instead), containers to MAX_ITEMS items; `cuts` (a list) collects a line per cut."""
    if x is None or isinstance(x, (bool, int, str)):
        if isinstance(x, str):
            if max_str is not None and len(x) > max_str:
                _note(cuts, f"a string of {len(x)} characters was cut to its first {max_str}")
                return x[:max_str]
            return x
        return x if isinstance(x, bool) or x is None else int(x)
    if _depth > MAX_DEPTH:
        _note(cuts, f"nesting deeper than {MAX_DEPTH} levels became text")
        return _short_str(x)
    n = _number(x)
    if n is not None:
        return n
    if isinstance(x, bytes):
        if max_str is not None and len(x) > max_str:
            _note(cuts, f"{len(x)} bytes were cut to their first {max_str}")
            x = x[:max_str]
        return x.decode("utf-8", "replace")
    sub = dict(_depth=_depth + 1, max_str=max_str, cuts=cuts)
    if isinstance(x, (dict, list, tuple, set, frozenset)) and len(x) > MAX_ITEMS:
        _note(cuts, f"a container of {len(x)} items was cut to its first {MAX_ITEMS}")
    if isinstance(x, dict):
        return {str(to_plain(k, **sub)) if not isinstance(k, str) else k: to_plain(v, **sub)
                for k, v in list(x.items())[:MAX_ITEMS]}
    if isinstance(x, (list, tuple)):
        return [to_plain(v, **sub) for v in list(x)[:MAX_ITEMS]]
    if isinstance(x, (set, frozenset)):
        items = [to_plain(v, **sub) for v in list(x)[:MAX_ITEMS]]
        try:
            return sorted(items)
        except TypeError:
            return items
    mod = type(x).__module__ or ""
    if mod.startswith("numpy") and hasattr(x, "tolist") and getattr(x, "size", MAX_ITEMS + 1) <= MAX_ITEMS:
        return to_plain(x.tolist(), **sub)
    return _short_str(x, cuts)


def _note(cuts: list | None, text: str) -> None:
    if cuts is not None and len(cuts) < 5:
        cuts.append(text)


def _short_str(x: Any, cuts: list | None = None) -> str:
    try:
        s = str(x)
    except Exception as e:  # a hostile __str__ must not break the runtime
        s = f"<unprintable {type(x).__name__}: {type(e).__name__}>"
    if len(s) > MAX_STR:
        _note(cuts, f"a text of {len(s)} characters was cut to its first {MAX_STR}")
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
