"""Our math grader next to Hugging Face's math-verify, on the same answers, and where they disagree.

    .venv/bin/pip install math-verify        # not a project dependency: only this script uses it
    .venv/bin/python scripts/compare_math_verify.py              # writes results/math_grading.json, prints a table
    .venv/bin/python scripts/compare_math_verify.py --limit 50   # the first 50 questions of each set, a quick look

What both graders see (a prediction is the text or value a program returned; the gold answer is the file's):
  self        every shipped math gold answer against itself, bare (as an agent's final_answer("...") gives it)
  self_in_$   the same, written "$gold$" (math-verify wants LaTeX in delimiters or \\boxed{})
  equivalent  the gold rewritten into an equivalent form (tests/benchmarks/test_math_grading.py: EQUIVALENT_FORMS)
  equivalent_in_$  the same, the bare LaTeX forms among them written "$form$"
  wrong       the gold perturbed into a wrong answer (number +1, doubled, a sign flipped, another fraction: WRONG_FORMS)
  wrong_1e-4  the gold's last number, when 1000 or more, +1: wrong, but plain numbers within 1e-4 relative pass
              for us by design (Qwen2.5-Math's math_equal, the paper's grader, does the same)
  runs        real model outputs: runs/*/eval/*/*.jsonl rows of math benchmarks (their stored `correct` too)
  stores      real model outputs: the final answers in runs/*/*store*.jsonl (teacher / student trajectories and
              CoT answers), gold answers found by the question text

Ours: agentdistill.benchmarks.answer_correct (extract_math_answer + math_equal). math-verify:
verify(gold, parse(output)) with its default settings; the gold is parsed from "$gold$", or as a plain expression
when it is a plain number (in "$4.46752e-05$" LaTeX reads the e as Euler's number).
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata as md
import json
import logging
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dspy  # noqa: E402

from agentdistill.benchmarks import answer_correct, load_benchmark  # noqa: E402
from agentdistill.benchmarks.math_grading import REL_TOL, SYMPY_TIMEOUT_S  # noqa: E402
from agentdistill.benchmarks.math_grading import brace_arguments  # noqa: E402
from tests.benchmarks.test_math_grading import (EQUIVALENT_FORMS, WRONG_FORMS, _change_last_number,  # noqa: E402
                                                _shipped_math_files, equivalent_forms, wrong_forms)

EXAMPLES_PER_SIDE = 12  # disagreements kept per set and direction in the JSON
# rules whose output is bare LaTeX (no "$", \boxed, "The answer is" around it); equivalent_in_$ wraps them in $...$
# (sqrt_as_python, pi_as_python stay bare: "$3 sqrt(13)$" is neither LaTeX nor Python)
BARE_LATEX_RULES = {"spaces_removed", "spaces_added", "no_left_right", "dfrac", "frac_as_slash", "integer_as_float",
                    "integers_as_floats", "trailing_zero"}
PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


class MathVerify:
    """math-verify with a gold parse cached per gold answer."""

    def __init__(self):
        from math_verify import parse, verify

        self.parse, self.verify, self.golds = parse, verify, {}

    def gold(self, gold: str):
        if gold not in self.golds:
            self.golds[gold] = self.parse(gold if PLAIN_NUMBER.fullmatch(gold) else f"${gold}$")
        return self.golds[gold]

    def correct(self, gold: str, output) -> bool:
        text = "" if output is None else output if isinstance(output, str) else str(output)
        try:
            return bool(self.verify(self.gold(gold), self.parse(text)))
        except Exception:  # verify/parse return False on their own errors; anything else counts as wrong too
            return False


def ours(example, output) -> bool:
    return answer_correct(example, dspy.Prediction(answer=output))


# ----------------------------------------------------------------------------- the answer pairs


def gold_examples(limit: int | None) -> list:
    """(file, example) for the shipped math sets; file: "math_500 (test)", "math_1000 (train)", ..."""
    out = []
    for path, (name, split) in _shipped_math_files().items():
        group = re.sub(r"_\d{8}$", "", path.stem) + f" ({split})"  # math500 and math share their files
        out += [(group, e) for e in load_benchmark(name, split=split, limit=limit)]
    return out


def synthetic_pairs(examples: list) -> dict:
    """set -> [(file, example, output, rule)] (rule "" for self)."""
    return {
        "self": [(g, e, e.answer, "") for g, e in examples],
        "self_in_$": [(g, e, f"${e.answer}$", "") for g, e in examples],
        "equivalent": [(g, e, form, rule) for g, e in examples for rule, form in equivalent_forms(e.answer).items()],
        "equivalent_in_$": [(g, e, f"${form}$" if rule in BARE_LATEX_RULES else form, rule)
                            for g, e in examples for rule, form in equivalent_forms(e.answer).items()],
        "wrong": [(g, e, form, rule) for g, e in examples for rule, form in wrong_forms(e.answer).items()],
        "wrong_1e-4": [(g, e, form, "plus_one_from_1000") for g, e in examples
                       if (form := _change_last_number(brace_arguments(e.answer), _plus_one_from_1000))],
    }


def _plus_one_from_1000(v):
    # +1 on a number of 1000 or more: within (or near) the paper's 1e-4 relative tolerance for plain numbers
    return v + 1 if abs(v) >= 1000 else None


def _math_example(gold: str, benchmark: str, ex_id: str):
    return dspy.Example(id=ex_id, question="", answer=gold, family="math", benchmark=benchmark)


def run_rows() -> tuple[list, dict]:
    """(benchmark, example, prediction, file) for the math rows of runs/*/eval/*/*.jsonl, and their stored verdicts."""
    from agentdistill.benchmarks.loaders import BENCHMARKS, canonical_name

    pairs, stored = [], {}
    for path in sorted(glob.glob(str(ROOT / "runs/*/eval/*/*.jsonl"))):
        for line in Path(path).read_text().splitlines():
            row = json.loads(line) if line.strip() else None
            if not row or BENCHMARKS[canonical_name(row["benchmark"])].family != "math":
                continue
            ex = _math_example(row["gold"], row["benchmark"], row["id"])
            pairs.append((row["benchmark"], ex, row["prediction"], str(Path(path).relative_to(ROOT))))
            stored[id(ex)] = bool(row["correct"])
    return pairs, stored


def store_rows(by_question: dict) -> list:
    """(file, example, final answer, store:kind) for stored trajectories / CoT answers to a shipped question."""
    pairs = []
    for path in sorted(glob.glob(str(ROOT / "runs/*/*store*.jsonl"))):
        for line in Path(path).read_text().splitlines():
            rec = json.loads(line) if line.strip() else {}
            data = rec.get("data") or {}
            group, ex = by_question.get((data.get("task") or {}).get("question"), (None, None))
            output = data.get("final_answer") if rec.get("kind") == "trajectory" else data.get("answer")
            if ex is not None and output is not None:  # no final answer: the run never answered
                pairs.append((group, ex, output, f"{Path(path).relative_to(ROOT)}:{rec['kind']}"))
    return pairs


# ----------------------------------------------------------------------------- grading and counting


def grade(pairs: list, mv: MathVerify, expected: bool | None, stored: dict | None = None) -> dict:
    """Counts per file / benchmark (and per rule or source), and examples of the disagreements."""
    by_bench, by_label = defaultdict(Counter), defaultdict(Counter)
    examples = {"ours_only": [], "math_verify_only": []}
    seconds = Counter()
    for group, ex, output, label in pairs:
        t = time.perf_counter()
        a = ours(ex, output)
        seconds["ours"] += time.perf_counter() - t
        t = time.perf_counter()
        b = mv.correct(ex.answer, output)
        seconds["math_verify"] += time.perf_counter() - t
        for c in (by_bench[group], by_bench["all"], by_label[label or "-"]):
            c["n"] += 1
            c["ours_correct"] += a
            c["math_verify_correct"] += b
            c["agree"] += a == b
            c["ours_only"] += a and not b
            c["math_verify_only"] += b and not a
            if stored is not None:
                c["stored_correct"] += stored[id(ex)]
                c["ours_agrees_with_stored"] += a == stored[id(ex)]
        if a != b:
            side = examples["ours_only" if a else "math_verify_only"]
            if len(side) < EXAMPLES_PER_SIDE:
                side.append({"set": group, "id": ex.id, "gold": ex.answer,
                             "output": output if isinstance(output, str) else repr(output), "label": label})
    out = {"by_benchmark": {k: _with_errors(dict(v), expected) for k, v in by_bench.items()},
           "by_rule_or_source": {k: _with_errors(dict(v), expected) for k, v in sorted(by_label.items())},
           "disagreements": examples, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    return out


def _with_errors(c: dict, expected: bool | None) -> dict:
    if expected is True:  # every output is a right answer: what a grader calls wrong is a false negative
        c["ours_false_negatives"] = c["n"] - c["ours_correct"]
        c["math_verify_false_negatives"] = c["n"] - c["math_verify_correct"]
    elif expected is False:  # every output is a wrong answer
        c["ours_false_positives"] = c["ours_correct"]
        c["math_verify_false_positives"] = c["math_verify_correct"]
    return c


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("math-verify", "latex2sympy2_extended", "antlr4-python3-runtime", "sympy", "dspy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def print_table(results: dict) -> None:
    print(f"{'set':<16} {'file / benchmark':<26} {'n':>6} {'ours ok':>8} {'m-v ok':>8} {'agree':>7} {'ours only':>10} "
          f"{'m-v only':>9}")
    for name, r in results["sets"].items():
        rows = r["by_benchmark"]
        for bench in [b for b in rows if b != "all"] + ["all"]:
            c = rows[bench]
            print(f"{name:<16} {bench:<26} {c['n']:>6} {c['ours_correct']:>8} {c['math_verify_correct']:>8} "
                  f"{c['agree']:>7} {c['ours_only']:>10} {c['math_verify_only']:>9}")
    print("(self/self_in_$/equivalent: every output is right, so 'ok' should be n; wrong: every output is wrong, "
          "so 'ok' counts false positives)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="questions per shipped set (default: all)")
    ap.add_argument("--out", default=str(ROOT / "results" / "math_grading.json"))
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # math-verify logs every expression it cannot parse
    try:
        mv = MathVerify()
    except ImportError:
        print("math-verify is not installed: .venv/bin/pip install math-verify", file=sys.stderr)
        return 2

    t0 = time.time()
    examples = gold_examples(args.limit)
    by_question = {}
    for group, e in examples if args.limit is None else gold_examples(None):
        by_question.setdefault(e.question, (group, e))
    sets = {}
    expected = {"self": True, "self_in_$": True, "equivalent": True, "equivalent_in_$": True, "wrong": False,
                "wrong_1e-4": False}
    for name, pairs in synthetic_pairs(examples).items():
        sets[name] = grade(pairs, mv, expected[name])
    pairs, stored = run_rows()
    sets["runs"] = grade(pairs, mv, None, stored)
    sets["stores"] = grade(store_rows(by_question), mv, None)

    results = {
        "what": "our math grader (agentdistill.benchmarks.answer_correct) and math-verify on the same answer pairs",
        "made_by": "scripts/compare_math_verify.py" + (f" --limit {args.limit}" if args.limit else ""),
        "settings": {
            "ours": {"grader": "answer_correct = math_equal(extract_math_answer(output), gold)",
                     "rel_tol_decimals": REL_TOL, "sympy_timeout_s": SYMPY_TIMEOUT_S},
            "math_verify": {"gold": "parse('$' + gold + '$'); parse(gold) when gold is a plain number",
                            "prediction": "parse(output): default extraction (LatexExtractionConfig, "
                                          "ExprExtractionConfig), fallback_mode first_match",
                            "verify": "defaults: float_rounding=6, numeric_precision=15, strict=True, timeout 5 s"},
            "limit_per_set": args.limit,
            "equivalent_rules": list(EQUIVALENT_FORMS), "wrong_rules": list(WRONG_FORMS),
            "sets": {"self": "gold vs itself, bare", "self_in_$": "gold vs '$gold$'",
                     "equivalent": "gold vs mechanically rewritten equivalent forms",
                     "equivalent_in_$": "the same, bare LaTeX forms written '$form$'",
                     "wrong": "gold vs perturbed wrong answers",
                     "wrong_1e-4": "gold vs its last number (>= 1000) + 1", "runs": "runs/*/eval/*/*.jsonl math rows",
                     "stores": "runs/*/*store*.jsonl final answers, gold found by question"},
        },
        "versions": _versions(),
        "n_gold_answers": len(examples),
        "sets": sets,
        "seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print_table(results)
    print(f"math-verify {results['versions']['math-verify']}; wrote {out} in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
