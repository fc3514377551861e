"""The Table 2 summary of a distill job, from a synthetic OUT/eval folder whose every figure is known by hand."""

import json

import pytest

from agentdistill.benchmarks.stats import stratified_bootstrap, wilson
from agentdistill.benchmarks.summary import summarize, write_summary

SEARCH_TOOLS = [{"name": "search", "signature": "(query) -> list", "doc": "Passages."},
                {"name": "final_answer", "signature": "(answer) -> None", "doc": "Ends the task."}]
MATH_TOOLS = SEARCH_TOOLS[1:]


def _step(code=None, *, final=False, calls=(), observation=None):
    parse_error = code is None
    return {"index": 0, "text": "", "raw": "", "thought": "", "code": code, "parse_error": parse_error,
            "observation": observation or ("Error: your reply has no ```python code block" if parse_error else "ok"),
            "is_final": final, "tool_calls": list(calls), "stdout": ""}


def _record(bench, qid, correct, *, answered=True, steps=None, tools=MATH_TOOLS, cot=False, error=None):
    if cot:
        trajectory = {"messages": [{"role": "assistant", "content": "Answer: 1"}]}
    else:
        steps = steps or [_step("final_answer(1)", final=True)]
        trajectory = {"tools": tools, "steps": steps}
    return {"benchmark": bench, "id": qid, "question": "q", "gold": "1", "prediction": "1" if answered else None,
            "answered": answered, "correct": bool(correct), "f1": float(correct),
            "steps": None if cot else len(trajectory["steps"]), "tokens": None if cot else 100, "seconds": 2.0,
            "judge": None, "error": error, "trajectory": trajectory, "forced": False}


def _write(out, row, bench, records):
    path = out / "eval" / row / f"{bench}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _simple(out, row, bench, pattern, **kw):
    prefix = bench[0]
    _write(out, row, bench, [_record(bench, f"{prefix}{i}", c, **kw) for i, c in enumerate(pattern)])


@pytest.fixture
def job(tmp_path):
    """4 gsm-hard and 5 hotpotqa questions; cot-distill lacks g3 and lists its questions in another order."""
    out = tmp_path / "job"
    for row, gsm, hotpot in (("student-agent", [1, 0, 0, 0], [0, 0, 0, 0, 1]),
                             ("teacher-agent", [1, 1, 1, 0], [1, 1, 1, 0, 0])):
        _simple(out, row, "gsm-hard", gsm)
        _simple(out, row, "hotpotqa", hotpot, tools=SEARCH_TOOLS)
    _simple(out, "student-cot", "gsm-hard", [0, 0, 0, 0], cot=True, answered=False)
    _write(out, "cot-distill", "gsm-hard",
           [_record("gsm-hard", f"g{i}", c, cot=True) for i, c in reversed(list(enumerate([0, 1, 0])))])
    _simple(out, "cot-distill", "hotpotqa", [0, 0, 1, 1, 0], cot=True)

    # agent-distill: 2 parse errors, 1 void turn among its gsm-hard steps; on hotpotqa h0 searches (tool call),
    # h2 searches (code only, no tool call recorded), h3 searches but gives no answer, h1 and h4 never search
    no_output = "(no output: use print() to see values)"
    gsm_steps = [[_step(None), _step("final_answer(1)", final=True)],
                 [_step("x = 1", observation=no_output), _step("final_answer(1)", final=True)],
                 [_step(None), _step("final_answer(2)", final=True)],
                 [_step("final_answer(3)", final=True)]]
    _write(out, "agent-distill", "gsm-hard",
           [_record("gsm-hard", f"g{i}", c, steps=s) for i, (c, s) in enumerate(zip([1, 1, 0, 0], gsm_steps))])
    call = {"name": "search", "args": ["who"], "kwargs": {}, "result": ["passage"]}
    hot_steps = [[_step("r = search('who')\nprint(r)", calls=[call]), _step("final_answer('a')", final=True)],
                 [_step("final_answer('b')", final=True)],
                 [_step("final_answer(search('who')[0])", final=True)],
                 [_step("r = search('who')", calls=[call])],
                 [_step("final_answer('research(x)')", final=True)]]
    answered = [True, True, True, False, True]
    _write(out, "agent-distill", "hotpotqa",
           [_record("hotpotqa", f"h{i}", c, steps=s, tools=SEARCH_TOOLS, answered=a)
            for i, (c, s, a) in enumerate(zip([1, 0, 1, 0, 0], hot_steps, answered))])
    return out


def test_accuracy_per_benchmark_with_wilson_intervals(job):
    rows = summarize(job)["rows"]
    assert list(rows) == ["teacher-agent", "student-cot", "student-agent", "cot-distill", "agent-distill"]
    ad = rows["agent-distill"]
    assert ad["gsm-hard"]["accuracy"] == 0.5 and ad["gsm-hard"]["n"] == 4
    assert ad["hotpotqa"]["accuracy"] == pytest.approx(0.4) and ad["hotpotqa"]["n"] == 5
    w = wilson(2, 5)
    assert (ad["hotpotqa"]["ci_low"], ad["hotpotqa"]["ci_high"]) == (w["low"], w["high"])
    assert rows["cot-distill"]["gsm-hard"] == {"accuracy": pytest.approx(1 / 3), "n": 3, **{
        k: v for k, v in zip(("ci_low", "ci_high"), (wilson(1, 3)["low"], wilson(1, 3)["high"]))}}
    assert "hotpotqa" not in rows["student-cot"]  # a row averages over the benchmarks it was run on


def test_the_average_is_the_macro_mean_with_a_deterministic_bootstrap_interval(job):
    first, second = summarize(job), summarize(job)
    avg = first["rows"]["agent-distill"]["average"]
    assert avg["accuracy"] == pytest.approx((0.5 + 0.4) / 2) and avg["n"] == 9
    assert avg["ci_low"] <= avg["accuracy"] <= avg["ci_high"] and avg["ci_low"] < avg["ci_high"]
    assert first == second
    assert first["questions"] == {"gsm-hard": 4, "hotpotqa": 5}


def test_paired_difference_uses_only_shared_questions(job):
    paired = summarize(job)["paired"]
    assert set(paired) == {"agent-distill vs cot-distill", "agent-distill vs student-agent",
                           "cot-distill vs student-cot", "teacher-agent vs agent-distill"}
    d = paired["agent-distill vs cot-distill"]
    # gsm-hard on g0-g2 only: [1,1,0] - [0,1,0] = 1/3; hotpotqa: [1,0,1,0,0] - [0,0,1,1,0] = 0
    assert d["by_benchmark"]["gsm-hard"]["n"] == 3 and d["by_benchmark"]["hotpotqa"]["n"] == 5
    assert d["by_benchmark"]["gsm-hard"]["diff"] == pytest.approx(1 / 3)
    assert d["by_benchmark"]["hotpotqa"]["diff"] == pytest.approx(0.0)
    assert d["diff"] == pytest.approx(1 / 6) and d["n"] == 8
    assert d["ci_low"] <= d["diff"] <= d["ci_high"]
    # student-cot only ran gsm-hard: the pair is that benchmark alone
    assert paired["cot-distill vs student-cot"]["n"] == 3
    assert paired["cot-distill vs student-cot"]["diff"] == pytest.approx(1 / 3)


def test_gap_closed_by_the_best_distilled_row(job):
    g = summarize(job)["gap_closed"]
    # student-agent 0.225, teacher-agent 0.675, agent-distill 0.45 (cot-distill 0.367)
    assert g["best"] == "agent-distill"
    assert g["value"] == pytest.approx((0.45 - 0.225) / (0.675 - 0.225))


def test_diagnostics(job):
    diag = summarize(job)["diagnostics"]
    gsm, hot = diag["agent-distill"]["gsm-hard"], diag["agent-distill"]["hotpotqa"]
    assert gsm["parse_error_rate"] == pytest.approx(2 / 7) and gsm["void_turn_rate"] == pytest.approx(1 / 7)
    assert gsm["mean_steps"] == pytest.approx(7 / 4) and gsm["search_rate"] is None  # no search tool: math
    assert hot["answered"] == pytest.approx(0.8)
    assert hot["search_rate"] == pytest.approx(2 / 4)  # h0 and h2 of the 4 answered
    cot = diag["cot-distill"]["gsm-hard"]
    assert cot["parse_error_rate"] is None and cot["void_turn_rate"] is None and cot["mean_steps"] is None
    assert cot["mean_seconds"] == 2.0 and cot["errors"] == 0


def test_settings_hash_extra_and_the_written_file(job, tmp_path):
    s = summarize(job, settings={"b": 1, "a": 2}, commit="abc", teacher="T", student="S", extra={"note": "x"})
    assert s["settings_hash"] == summarize(job, settings={"a": 2, "b": 1})["settings_hash"]
    assert len(s["settings_hash"]) == 12 and s["note"] == "x" and s["commit"] == "abc"
    path = write_summary(s, tmp_path / "results" / "table2_cpu" / "summary.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(s))
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temp file left behind


def test_row_and_benchmark_filters(job):
    s = summarize(job, rows=["agent-distill", "cot-distill"], benchmarks=["hotpotqa"])
    assert list(s["rows"]) == ["agent-distill", "cot-distill"] and list(s["questions"]) == ["hotpotqa"]
    with pytest.raises(ValueError, match="agent-distil'"):
        summarize(job, rows=["agent-distil"])


def test_an_empty_eval_folder_is_a_clear_error(tmp_path):
    (tmp_path / "eval").mkdir()
    with pytest.raises(ValueError, match=str(tmp_path / "eval")):
        summarize(tmp_path)


def test_stratified_bootstrap_of_constant_strata_has_no_width():
    b = stratified_bootstrap([[1, 1], [0, 0, 0]])
    assert (b["mean"], b["low"], b["high"], b["n"]) == (0.5, 0.5, 0.5, 5)
