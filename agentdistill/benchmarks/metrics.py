"""The metric the optimizers and the evaluation use: is a program's answer correct for this example?

    from agentdistill.benchmarks import answer_correct
    answer_correct(example, pred)            # bool; DSPy metric signature (example, pred, trace=None)

Dispatches on the example's task family (set by the loaders; or inferred from the benchmark name):
math -> `math_equal` on the extracted final answer; factual -> normalised exact match.
`answer_f1` is the factual token F1 (math: 0/1), for reporting next to accuracy.
"""

from __future__ import annotations

from agentdistill.benchmarks.factual_grading import exact_match, extract_factual_answer, f1_score
from agentdistill.benchmarks.math_grading import extract_math_answer, math_equal


def task_family(example) -> str:
    """ "math" or "factual" for an example (its `family` field, else its benchmark's family)."""
    family = _get(example, "family")
    if family in ("math", "factual"):
        return family
    bench = _get(example, "benchmark")
    if bench:
        from agentdistill.benchmarks.loaders import BENCHMARKS, canonical_name

        try:
            return BENCHMARKS[canonical_name(str(bench))].family
        except Exception:
            pass
    raise ValueError(
        "cannot tell whether this example is math or factual: give it a 'family' field ('math'/'factual') or "
        "load it with agentdistill.benchmarks.load_benchmark / load_file(family=...)."
    )


def _get(obj, key, default=None):
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    try:
        value = obj.get(key, default) if hasattr(obj, "get") else getattr(obj, key, default)
    except Exception:
        value = getattr(obj, key, default)
    return value


def predicted_answer(pred):
    """The raw answer of a prediction: `pred.answer` of a dspy.Prediction/dict, or the value itself."""
    if pred is None:
        return None
    if isinstance(pred, (str, int, float, list, tuple)):
        return pred
    return _get(pred, "answer")


def answer_correct(example, pred, trace=None) -> bool:
    """True when `pred`'s answer is correct for `example` (math: symbolic equivalence; factual: EM)."""
    raw = predicted_answer(pred)
    if raw is None:
        return False
    gold = _get(example, "answer")
    if task_family(example) == "math":
        return math_equal(extract_math_answer(raw), gold)
    return exact_match(extract_factual_answer(raw), gold)


def answer_f1(example, pred, trace=None) -> float:
    """Token F1 for factual examples; 1.0/0.0 correctness for math."""
    raw = predicted_answer(pred)
    if raw is None:
        return 0.0
    if task_family(example) == "math":
        return float(answer_correct(example, pred))
    return f1_score(extract_factual_answer(raw), _get(example, "answer"))
