"""The results summary of a distill job (the paper's Table 2): accuracy with intervals, paired comparisons, diagnostics.

    from agentdistill.benchmarks.summary import summarize, write_summary
    s = summarize("runs/table2", commit="abc1234", teacher="qwen2.5-coder-0.5b", student="smollm2-135m",
                  settings={"max_steps": 5, "limit": 50})
    write_summary(s, "results/table2_cpu/summary.json")       # then: .venv/bin/python scripts/readme_tables.py

    # or from the shell:
    .venv/bin/python -m agentdistill.benchmarks.summary runs/table2 -o results/table2_cpu/summary.json \\
        --commit "$(git rev-parse --short HEAD)" --teacher T --student S --settings settings.json

It reads only `OUT/eval/<ROW>/<BENCHMARK>.jsonl` (one record per question, see benchmarks.evaluation), so a summary
can be rebuilt from a finished job's files without rerunning anything. Every figure carries n and a 95% interval:
Wilson per benchmark; for the macro average over benchmarks and for paired row differences a stratified bootstrap
over questions (fixed seed, so the same files always give the same JSON). Rows are compared only on the questions
both answered to be scored on, matched by (benchmark, id).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from agentdistill.benchmarks.stats import paired_difference, stratified_bootstrap, wilson

ROW_ORDER = ("teacher-cot", "teacher-agent", "student-cot", "student-agent", "cot-distill", "agent-distill",
             "agent-distill+ftp", "agent-distill+sag", "agent-distill+ftp+sag")
# (a, b): "a vs b" is a - b. The paper's claims: agent distillation beats CoT distillation and the untrained
# agent, CoT distillation beats plain CoT, each addition (first-thought prefix, self-consistent action generation)
# helps, and how far the distilled student still is from its teacher.
PAIRS = (("agent-distill", "cot-distill"), ("agent-distill", "student-agent"), ("cot-distill", "student-cot"),
         ("agent-distill+ftp", "agent-distill"), ("agent-distill+sag", "agent-distill"),
         ("agent-distill+ftp+sag", "agent-distill"), ("teacher-agent", "agent-distill"))
RESAMPLES, SEED = 2000, 0
_SEARCH_CALL = re.compile(r"\bsearch\s*\(")  # `search(`, not `research(` or `.search_index(`


def summarize(out_dir, *, benchmarks=None, rows=None, settings=None, commit: str = "", teacher: str = "",
              student: str = "", extra: dict | None = None) -> dict:
    """The summary dict of the job whose folder is `out_dir` (see the module docstring for the shape).

    benchmarks / rows: keep only these (in this order); a name with no JSONL is a ValueError, since a typo
    would otherwise drop a row from the table without a word. None: everything found.
    """
    data = _load(Path(out_dir), benchmarks, rows)
    settings = settings or {}
    summary = {
        "commit": commit,
        "settings_hash": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12],
        "teacher": teacher,
        "student": student,
        "rows": {row: _accuracy(by_bench) for row, by_bench in data.items()},
        "paired": {},
        "gap_closed": None,
        "diagnostics": {row: {b: _diagnostics(recs) for b, recs in by_bench.items()} for row, by_bench in data.items()},
        "questions": {},
        "settings": settings,
    }
    for a, b in _pairs(data):
        pair = _paired(data[a], data[b])
        if pair is not None:  # rows with no question in common have nothing to compare
            summary["paired"][f"{a} vs {b}"] = pair
    summary["gap_closed"] = _gap_closed({row: r["average"]["accuracy"] for row, r in summary["rows"].items()})
    ids: dict[str, set] = {}
    for by_bench in data.values():
        for bench, recs in by_bench.items():
            ids.setdefault(bench, set()).update(r["id"] for r in recs)
    summary["questions"] = {b: len(ids[b]) for b in _bench_order(data, benchmarks)}
    clash = set(extra or {}) & set(summary)
    if clash:
        raise ValueError(f"summarize(extra=...) would overwrite the summary's own keys: {sorted(clash)}")
    summary.update(extra or {})
    return summary


def write_summary(summary: dict, path) -> Path:
    """Write `summary` as JSON (indent 2) atomically: a reader never sees half a file, even if this is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


# ---- reading the job's files ----

def _load(out: Path, benchmarks, rows) -> dict[str, dict[str, list[dict]]]:
    """{row: {benchmark: [record, ...]}}, rows in table order, benchmarks in `benchmarks` order or sorted."""
    eval_dir = out / "eval"
    data: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(eval_dir.glob("*/*.jsonl")):
        records = _read_jsonl(path)
        if records:
            data.setdefault(path.parent.name, {})[path.stem] = records
    if not data:
        raise ValueError(f"no per-question records in {eval_dir}: expected {eval_dir}/<row>/<benchmark>.jsonl "
                         "as a distill job's evaluation writes them")
    for wanted, found, what in ((rows, set(data), "rows"),
                                (benchmarks, {b for r in data.values() for b in r}, "benchmarks")):
        missing = [x for x in (wanted or []) if x not in found]
        if missing:
            raise ValueError(f"{eval_dir} has no {what} {missing}; it has {sorted(found)}")
    order = _bench_order(data, benchmarks)
    names = rows if rows is not None else sorted(data, key=_row_key)
    kept = {row: {b: data[row][b] for b in order if b in data[row]} for row in names}
    return {row: by_bench for row, by_bench in kept.items() if by_bench}


def _read_jsonl(path: Path) -> list[dict]:
    records, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:  # e.g. the last line of a job killed mid-write
            raise ValueError(f"{path}:{number}: not a JSON record ({e})") from None
        record["id"] = str(record["id"])
        if record["id"] in seen:  # pairing is by id: two records for one question would make it ambiguous
            raise ValueError(f"{path}:{number}: question id {record['id']!r} appears twice")
        seen.add(record["id"])
        records.append(record)
    return records


def row_rank(name: str) -> float:
    """A row's place in the table (the paper's order); a variant such as `student-agent+sag` goes right after its
    base row, unknown rows last. The README's tables (scripts/readme_tables.py) sort by it too."""
    if name in ROW_ORDER:
        return ROW_ORDER.index(name)
    base = name.split("+")[0]
    return ROW_ORDER.index(base) + 0.5 if base in ROW_ORDER else len(ROW_ORDER)


def _row_key(name: str):
    return row_rank(name), name


def _bench_order(data, benchmarks) -> list[str]:
    found = {b for by_bench in data.values() for b in by_bench}
    return [b for b in benchmarks if b in found] if benchmarks is not None else sorted(found)


# ---- accuracy and comparisons ----

def _scores(records) -> dict[str, float]:
    return {r["id"]: 1.0 if r["correct"] else 0.0 for r in records}


def _accuracy(by_bench: dict[str, list[dict]]) -> dict:
    out = {}
    for bench, records in by_bench.items():
        s = list(_scores(records).values())
        w = wilson(int(sum(s)), len(s))
        out[bench] = {"accuracy": w["rate"], "n": w["n"], "ci_low": w["low"], "ci_high": w["high"]}
    avg = stratified_bootstrap([list(_scores(r).values()) for r in by_bench.values()], resamples=RESAMPLES,
                               seed=SEED)
    out["average"] = {"accuracy": avg["mean"], "n": avg["n"], "ci_low": avg["low"], "ci_high": avg["high"]}
    return out


def _pairs(data) -> list[tuple[str, str]]:
    pairs = [(a, b) for a, b in PAIRS if a in data and b in data]
    # any other "<row>+sag" against its row (e.g. student-agent+sag vs student-agent): the same question as above
    pairs += [(r, r[:-4]) for r in data if r.endswith("+sag") and r[:-4] in data and (r, r[:-4]) not in pairs]
    return pairs


def _paired(a: dict[str, list[dict]], b: dict[str, list[dict]]) -> dict | None:
    """a - b on the questions both rows have: macro mean of per-benchmark mean differences, bootstrapped."""
    diffs, by_bench = [], {}
    for bench in a:
        if bench not in b:
            continue
        sa, sb = _scores(a[bench]), _scores(b[bench])
        shared = [i for i in sa if i in sb]
        if not shared:
            continue
        d = paired_difference([sa[i] for i in shared], [sb[i] for i in shared])
        by_bench[bench] = {"diff": d["difference"], "ci_low": d["low"], "ci_high": d["high"], "n": d["n"]}
        diffs.append([sa[i] - sb[i] for i in shared])
    if not diffs:
        return None
    # resampling the differences = resampling the same questions for both rows (the pairing is kept)
    boot = stratified_bootstrap(diffs, resamples=RESAMPLES, seed=SEED)
    return {"diff": boot["mean"], "ci_low": boot["low"], "ci_high": boot["high"], "n": boot["n"],
            "by_benchmark": by_bench}


def _gap_closed(averages: dict[str, float]) -> dict | None:
    """How much of the teacher-agent minus student-agent gap the best distilled row closes (1.0: all of it)."""
    student, teacher = averages.get("student-agent"), averages.get("teacher-agent")
    distilled = {row: acc for row, acc in averages.items() if "-distill" in row}
    if student is None or teacher is None or not distilled or teacher - student <= 0:
        return None
    best = max(distilled, key=distilled.get)  # ties: the first in table order
    return {"value": (distilled[best] - student) / (teacher - student), "best": best,
            "best_average": distilled[best], "student_agent": student, "teacher_agent": teacher}


# ---- diagnostics: why a row scores what it scores ----

def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _steps(record) -> list[dict] | None:
    """The agent's step dicts; None for a CoT record (its trajectory is a chat) or one that failed."""
    traj = record.get("trajectory")
    return traj["steps"] if isinstance(traj, dict) and isinstance(traj.get("steps"), list) else None


def _has_search_tool(record) -> bool:
    traj = record.get("trajectory") or {}
    tools = traj.get("tools") if isinstance(traj, dict) else None
    return any(isinstance(t, dict) and t.get("name") == "search" for t in tools or []) or _searched(record)


def _searched(record) -> bool:
    """Did the agent call `search` at or before its final step? (tool_calls when recorded, else its code)"""
    for step in _steps(record) or []:
        calls = step.get("tool_calls") or []
        if any(isinstance(c, dict) and c.get("name") == "search" for c in calls):
            return True
        if not calls and _SEARCH_CALL.search(step.get("code") or ""):
            return True
        if step.get("is_final"):
            break
    return False


def _diagnostics(records: list[dict]) -> dict:
    agent = [r for r in records if _steps(r) is not None]
    steps = [s for r in agent for s in _steps(r)]
    parse_errors = sum(bool(s.get("parse_error")) for s in steps)
    # code that ran and neither printed, returned nor answered: the agent shows "(no output: use print() ...)"
    void = sum(not s.get("parse_error") and str(s.get("observation") or "").startswith("(no output") for s in steps)
    factual = any(_has_search_tool(r) for r in agent)  # only an agent given a search tool can be asked to search
    answered = [r for r in records if r.get("answered")]
    return {
        "answered": _mean([1.0 if r.get("answered") else 0.0 for r in records]),
        "parse_error_rate": parse_errors / len(steps) if steps else None,
        "void_turn_rate": void / len(steps) if steps else None,
        "mean_steps": _mean(r.get("steps") for r in records),
        "mean_tokens": _mean(r.get("tokens") for r in records),
        "mean_seconds": _mean(r.get("seconds") for r in records),
        "forced": _mean([1.0 if r.get("forced") else 0.0 for r in records]),
        "search_rate": _mean([1.0 if _searched(r) else 0.0 for r in answered]) if factual and answered else None,
        "errors": sum(r.get("error") is not None for r in records),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Summarize a distill job's per-question evaluation files.")
    ap.add_argument("out_dir", help="the job's output folder (holds eval/<row>/<benchmark>.jsonl)")
    ap.add_argument("-o", "--output", help="where to write the JSON (default: OUT/summary.json)")
    ap.add_argument("--commit", default="")
    ap.add_argument("--teacher", default="")
    ap.add_argument("--student", default="")
    ap.add_argument("--settings", help="a JSON file of the run's settings (hashed into settings_hash)")
    ap.add_argument("--rows", nargs="+")
    ap.add_argument("--benchmarks", nargs="+")
    a = ap.parse_args(argv)
    settings = json.loads(Path(a.settings).read_text()) if a.settings else None
    s = summarize(a.out_dir, benchmarks=a.benchmarks, rows=a.rows, settings=settings, commit=a.commit,
                  teacher=a.teacher, student=a.student)
    print(write_summary(s, a.output or Path(a.out_dir) / "summary.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
