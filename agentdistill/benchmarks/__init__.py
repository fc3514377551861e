"""Benchmarks: loaders for the paper's eight evaluation sets (and any file of their format), graders, evaluation.

    from agentdistill.benchmarks import load_benchmark, answer_correct
    test = load_benchmark("math500", split="test", limit=50)      # list[dspy.Example], inputs: question
    answer_correct(test[0], dspy.Prediction(answer="\\frac{14}{3}"))

Names are resolved lazily so that importing this package (e.g. in the sympy worker) does not import dspy.
"""

import importlib

_EXPORTS = {
    "load_benchmark": "loaders", "load_file": "loaders", "find_data_dir": "loaders", "benchmark_file": "loaders",
    "BENCHMARKS": "loaders", "BenchmarkFormatError": "loaders", "BenchmarkNotFoundError": "loaders",
    "math_equal": "math_grading", "extract_math_answer": "math_grading", "normalize_math_answer": "math_grading",
    "exact_match": "factual_grading", "f1_score": "factual_grading", "normalize_answer": "factual_grading",
    "LLMJudge": "factual_grading",
    "answer_correct": "metrics", "answer_f1": "metrics", "task_family": "metrics",
    "evaluate": "evaluation", "EvalResult": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"agentdistill.benchmarks.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'agentdistill.benchmarks' has no attribute {name!r}")
