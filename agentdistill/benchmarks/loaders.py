"""Loaders for the paper's question files: `{"metadata": ..., "examples": [{"id", "question", "answer", ...}]}`.

    from agentdistill.benchmarks import load_benchmark, load_file
    test = load_benchmark("math500")                         # MATH-500 test questions, list[dspy.Example]
    train = load_benchmark("math", split="train", limit=100)  # the MATH training questions
    mine = load_file("my_questions.json", family="factual")  # any file of the same format

Every example carries `id`, `question`, `answer` (a string), `family` ("math" | "factual"), `benchmark`, plus
the file's extra fields; inputs are marked with `with_inputs("question")`.

Where the files are: `data_dir=` argument, else $AGENTDISTILL_DATA, else the first `shared/data/benchmarks`
(or `data/benchmarks`) found next to / above the working folder or the installed package.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import dspy

logger = logging.getLogger(__name__)


class BenchmarkFormatError(ValueError):
    """A question file does not have the expected format; the message names file, example and field."""


class BenchmarkNotFoundError(FileNotFoundError):
    """A benchmark name or data folder could not be resolved; the message says where it looked and the fix."""


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    family: str  # "math" | "factual"
    stems: dict  # split -> file-name stem before "_<count>_<date>.json" (e.g. "math_500"), or a tuple of spellings
    paper_size: int  # number of questions in the paper's evaluation


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("hotpotqa", "factual", {"test": "hotpotqa", "train": "hotpotqa"}, 500),
        BenchmarkSpec("bamboogle", "factual", {"test": "bamboogle"}, 125),
        BenchmarkSpec("musique", "factual", {"test": "musique"}, 500),
        BenchmarkSpec("2wikimultihopqa", "factual", {"test": "2wikimultihopqa"}, 500),
        BenchmarkSpec("math500", "math", {"test": "math", "train": "math"}, 500),
        BenchmarkSpec("gsm-hard", "math", {"test": "gsm_hard"}, 500),
        BenchmarkSpec("aime", "math", {"test": "aime"}, 90),
        # the paper's file is olymath_200_20250511.json (one "m"); the dataset's own name has two
        BenchmarkSpec("olymmath", "math", {"test": ("olymmath", "olymath")}, 200),
        # training questions (train/): MATH levels 3+, and the "medium" MATH set
        BenchmarkSpec("math", "math", {"train": "math", "test": "math"}, 1000),
        BenchmarkSpec("math_medium", "math", {"train": "math_medium"}, 1000),
    ]
}
ALIASES = {"math-500": "math500", "math_500": "math500", "gsm_hard": "gsm-hard", "gsmhard": "gsm-hard",
           "2wiki": "2wikimultihopqa", "2wikimqa": "2wikimultihopqa", "hotpot": "hotpotqa",
           "math-medium": "math_medium", "olym": "olymmath", "olymath": "olymmath"}
EVAL_BENCHMARKS = ["hotpotqa", "bamboogle", "musique", "2wikimultihopqa", "math500", "gsm-hard", "aime", "olymmath"]

_MATH_NAMES = re.compile(r"math|gsm|aime|olym|amc|competition", re.IGNORECASE)
_FACTUAL_NAMES = re.compile(r"hotpot|musique|wiki|bamboogle|nq|triviaqa|popqa|qa\b", re.IGNORECASE)


def canonical_name(name: str) -> str:
    """The registry name for a benchmark name or alias; BenchmarkNotFoundError with the valid names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(key, list(BENCHMARKS) + list(ALIASES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BenchmarkNotFoundError(
            f"unknown benchmark {name!r}.{hint} Known: {', '.join(BENCHMARKS)} (or give a path to a .json file)."
        )
    return key


# ----------------------------------------------------------------------------- where the data lives


def _candidates() -> list[Path]:
    roots = []
    for start in (Path.cwd(), Path(__file__).resolve().parents[2]):  # working folder, the repository checkout
        roots += [start, *start.parents]
    out = []
    for root in roots:
        for rel in ("shared/data/benchmarks", "data/benchmarks", "../shared/data/benchmarks"):
            out.append((root / rel))
    return out


def _is_benchmark_dir(p: Path) -> bool:
    return p.is_dir() and any((p / s).is_dir() for s in ("test", "train"))


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The benchmarks folder (holding test/ and train/); see the module docstring for the search order."""
    given = data_dir or os.environ.get("AGENTDISTILL_DATA")
    if given:
        p = Path(given).expanduser()
        for cand in (p, p / "benchmarks", p / "data" / "benchmarks"):  # accept the data/ folder too
            if _is_benchmark_dir(cand):
                return cand.resolve()
        source = "data_dir" if data_dir else "$AGENTDISTILL_DATA"
        raise BenchmarkNotFoundError(
            f"{source}={str(p)!r} holds no benchmarks: expected a folder with test/ and/or train/ subfolders "
            f"of question files (e.g. .../shared/data/benchmarks)."
        )
    seen = []
    for cand in _candidates():
        if _is_benchmark_dir(cand):
            return cand.resolve()
        seen.append(str(cand))
    raise BenchmarkNotFoundError(
        "no benchmark folder found (looked for shared/data/benchmarks and data/benchmarks above the working "
        "folder and the package). Fix: set AGENTDISTILL_DATA=/path/to/benchmarks or pass data_dir=."
    )


def benchmark_file(name: str, split: str = "test", data_dir=None) -> Path:
    """The question file of a named benchmark and split (newest dated file when several match)."""
    spec = BENCHMARKS[canonical_name(name)]
    if split not in spec.stems:
        raise BenchmarkNotFoundError(
            f"benchmark {spec.name!r} has no {split!r} split; it has: {', '.join(spec.stems)}."
        )
    root = find_data_dir(data_dir)
    stems = spec.stems[split] if isinstance(spec.stems[split], tuple) else (spec.stems[split],)
    stem = "(?:" + "|".join(map(re.escape, stems)) + ")"
    pattern = re.compile(rf"^{stem}(?:_\d+)?(?:_\d{{8}})?(?:[-_](?:en|english))?\.jsonl?$", re.IGNORECASE)
    # newest date last, whichever spelling has it (names alone would sort "olymath_..." before "olymmath_...")
    hits = sorted((p for folder in (root / split, root) if folder.is_dir() for p in folder.iterdir()
                   if pattern.match(p.name)), key=lambda p: (re.findall(r"_(\d{8})", p.name)[-1:], p.name))
    if not hits:
        looked = " or ".join(f"'{s}_<count>_<date>.json'" for s in stems)
        raise BenchmarkNotFoundError(
            f"no {split} file for benchmark {spec.name!r} in {root / split} (looked for "
            f"{looked}). Fix: put the file there under that name, point "
            f"AGENTDISTILL_DATA / data_dir at the folder that has it, or load it directly with load_file(path)."
        )
    return hits[-1]


# ----------------------------------------------------------------------------- reading files


def _answer_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # GSM-Hard: 13138980.0 -> "13138980"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value) and value:
        return str(value[0])  # some QA files list aliases; the first is the gold answer
    return str(value)


def infer_family(path: Path, metadata: dict, examples: list) -> str:
    """math or factual, from the dataset names in the file (then the file name)."""
    info = (metadata or {}).get("dataset_info", {}) if isinstance(metadata, dict) else {}
    names = [str(info.get("name", "")), path.name] + [str(e.get("dataset_name", "")) for e in examples[:5]
                                                     if isinstance(e, dict)]
    text = " ".join(names)
    if _FACTUAL_NAMES.search(path.name) or (_FACTUAL_NAMES.search(text) and not _MATH_NAMES.search(path.name)):
        return "factual"
    if _MATH_NAMES.search(text):
        return "math"
    return "factual"


def check_limit(limit: int | None) -> None:
    """limit: None (all examples) or a positive count; 0 or -1 are refused, not read as 'all' or 'one'."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r}: pass a positive number of examples, or None for all of them")


def load_file(path, *, family: str | None = None, benchmark: str | None = None, limit: int | None = None,
              strict: bool = False) -> list[dspy.Example]:
    """Read one question file into `dspy.Example`s (inputs: question).

    Args:
        path: a JSON file `{"metadata": ..., "examples": [...]}` (a bare list of examples, or JSONL, also works).
        family: "math" or "factual"; inferred from the dataset names when None.
        benchmark: the name stored on each example (default: the file's dataset name).
        limit: keep the first `limit` examples (file order, which is the paper's order); None: all.
        strict: raise on examples whose answer is null; by default they are skipped with a warning
            (two such questions exist in the shipped math_medium training file).
    """
    check_limit(limit)
    path = Path(path)
    if not path.is_file():
        raise BenchmarkNotFoundError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchmarkFormatError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    metadata = {}
    if isinstance(data, dict):
        if "examples" not in data:
            raise BenchmarkFormatError(
                f"{path}: top-level object has no 'examples' field (found: {', '.join(map(str, data)) or 'none'}); "
                f"expected {{\"metadata\": ..., \"examples\": [{{\"id\", \"question\", \"answer\"}}, ...]}}"
            )
        metadata, rows = data.get("metadata") or {}, data["examples"]
    else:
        rows = data
    if not isinstance(rows, list):
        raise BenchmarkFormatError(f"{path}: field 'examples' must be a list, got {type(rows).__name__}")
    if family is not None and family not in ("math", "factual"):
        raise ValueError(f"family must be 'math' or 'factual', got {family!r}")
    family = family or infer_family(path, metadata, rows)
    if benchmark is None:  # "gsm_hard_500_20250507.json" -> "gsm-hard" (the metadata often just says "MATH")
        stem = re.sub(r"(_\d+)?(_\d{8})?$", "", path.stem).lower()
        benchmark = ALIASES.get(stem, stem)

    examples, skipped = [], []
    for i, row in enumerate(rows):
        where = f"{path}: example #{i}"
        if not isinstance(row, dict):
            raise BenchmarkFormatError(f"{where} must be an object with 'question' and 'answer', got "
                                       f"{type(row).__name__}")
        ex_id = row.get("id", i)
        where = f"{path}: example #{i} (id {ex_id!r})"
        for field in ("question", "answer"):
            if field not in row:
                raise BenchmarkFormatError(f"{where}: missing field '{field}' (fields present: {', '.join(row)})")
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise BenchmarkFormatError(f"{where}: field 'question' must be a non-empty string, "
                                       f"got {row['question']!r:.60}")
        if row["answer"] is None or (isinstance(row["answer"], str) and not row["answer"].strip()):
            if strict:
                raise BenchmarkFormatError(f"{where}: field 'answer' is empty/null")
            skipped.append(str(ex_id))
            continue
        if not isinstance(row["answer"], (str, int, float, bool, list)):
            raise BenchmarkFormatError(f"{where}: field 'answer' must be a string or number, "
                                       f"got {type(row['answer']).__name__}")
        extra = {k: v for k, v in row.items() if k not in ("id", "question", "answer")}
        ex = dspy.Example(id=str(ex_id), question=row["question"], answer=_answer_text(row["answer"]),
                          family=family, benchmark=benchmark, **extra)
        examples.append(ex.with_inputs("question"))
        if limit is not None and len(examples) >= limit:
            break
    if skipped:
        logger.warning("%s: skipped %d example(s) with a null/empty answer (ids %s)", path, len(skipped),
                       ", ".join(skipped[:10]))
    if not examples:
        raise BenchmarkFormatError(f"{path}: no usable examples")
    return examples


def load_benchmark(name: str, split: str = "test", limit: int | None = None, data_dir=None,
                   strict: bool = False) -> list[dspy.Example]:
    """The examples of a named benchmark (see BENCHMARKS) or of a file path, in the file's order.

    `split`: "test" (evaluation sets) or "train" (hotpotqa, math, math_medium: the teacher's questions).
    """
    check_limit(limit)
    if name.endswith((".json", ".jsonl")) or os.sep in name:
        return load_file(name, limit=limit, strict=strict)
    key = canonical_name(name)
    spec = BENCHMARKS[key]
    return load_file(benchmark_file(key, split, data_dir), family=spec.family, benchmark=key, limit=limit,
                     strict=strict)


def train_test_split(examples: list, test_size: float | int = 0.2, seed: int = 0) -> tuple[list, list]:
    """Shuffle (seeded) and split a list of examples, e.g. a user's single file into train and dev."""
    import random

    items = list(examples)
    random.Random(seed).shuffle(items)
    n_test = int(round(len(items) * test_size)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < len(items):
        raise ValueError(f"test_size={test_size} leaves an empty split of {len(items)} examples")
    return items[n_test:], items[:n_test]
