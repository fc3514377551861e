"""The main job end to end on a scripted student LM (no model weights): evaluation, MLflow runs, table, chart."""

import json
from pathlib import Path

import mlflow
import pytest
from rich.console import Console

from agentdistill.benchmarks import load_benchmark
from agentdistill.cli import distill, teacher_stage
from agentdistill.cli.config import parse_config
from tests.cli.question_lm import scripted_lm


def test_job_runs_variants_and_logs_everything(mlflow_store, tmp_path, monkeypatch):
    math = load_benchmark("math500", limit=3)
    gsm = load_benchmark("gsm-hard", limit=2)
    replies = {math[0].question[:60]: "polar: r = 3, theta = pi/2\n\nAnswer: (3, pi/2)",
               math[2].question[:60]: "sum the values\n\nAnswer: 14/3",
               gsm[0].question[:60]: "218983 * 2 * 30\n\nAnswer: 13138980"}
    lm, engine = scripted_lm(replies)
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    cfg = parse_config({
        "run": {"experiment": "job", "output_dir": str(tmp_path / "out")},
        "teacher": {"model": "unused"}, "student": {"model": "scripted"},
        "distill": {"variants": ["student-cot"]},
        "eval": {"benchmarks": ["math500", "gsm-hard"], "limit": 3},
        "sag": {"enabled": True, "n": 3, "temperature": 0.7},
    })
    console = Console(record=True, width=150)
    results = distill.run_job(cfg, console)

    # math500: 2 of 3 right; gsm-hard (limit 3 -> 3 questions): 1 of 3 right; the same with self-consistency
    assert results["student-cot"]["math500"] == 2 / 3 and results["student-cot"]["gsm-hard"] == 1 / 3
    assert results["student-cot+sag"] == results["student-cot"]
    assert engine.calls == 6 + 6 * 3  # 6 questions once, then 3 samples each
    text = console.export_text()
    assert "student-cot+sag" in text and "66.7" in text and "average" in text

    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["results"]["student-cot"]["average"] == 0.5
    rows = [json.loads(line) for line in (out / "eval" / "student-cot" / "gsm-hard.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sum(r["correct"] for r in rows) == 1
    assert (out / "comparison.png").stat().st_size > 10_000

    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["job"], output_format="list")}
    assert set(runs) == {"student-cot", "student-cot+sag", "comparison"}
    sag = runs["student-cot+sag"].data
    assert sag.params["variant"] == "student-cot+sag" and sag.params["sag_n"] == "3" and sag.params["program"] == "cot"
    assert sag.metrics["accuracy/average"] == 0.5 and "eval_seconds" in sag.metrics
    # every setting that shapes a result, for the UI's run comparison
    assert (sag.params["max_steps"], sag.params["max_tokens"], sag.params["split"]) == ("5", "512", "test")
    assert sag.params["sag_top_p"] == "0.8" and runs["student-cot"].data.params["sag_top_p"] == "0.0"
    assert sag.params["student_max_tokens"] == "512"
    assert len({name[:20] for name in runs}) == len(runs)  # the runs list cuts names at 20 characters
    client = mlflow.MlflowClient()
    config = client.download_artifacts(runs["student-cot"].info.run_id, "config/config.json", str(tmp_path / "dl"))
    assert json.loads(Path(config).read_text())["eval"]["limit"] == 3
    # the summary: every cell with n and its Wilson interval, the same file in [run] publish_dir when set
    summary = json.loads((out / "summary.json").read_text())
    cell = summary["rows"]["student-cot"]["math500"]
    assert (cell["accuracy"], cell["n"]) == (2 / 3, 3) and cell["ci_low"] < 2 / 3 < cell["ci_high"]
    assert summary["rows"]["student-cot"]["average"]["n"] == 6 and summary["student"] == "scripted"


def test_job_agent_variant_runs_the_real_agent_loop(mlflow_store, tmp_path, monkeypatch):
    gsm = load_benchmark("gsm-hard", limit=2)
    code_reply = "Thought: multiply.\n```python\nfinal_answer(218983 * 2 * 30)\n```"
    lm, engine = scripted_lm({gsm[0].question[:60]: code_reply})  # the other question gets no code: parse errors
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    cfg = parse_config({
        "run": {"experiment": "agentjob", "output_dir": str(tmp_path / "out")},
        "task": {"max_steps": 2},
        "teacher": {"model": "unused"}, "student": {"model": "scripted"},
        "distill": {"variants": ["student-agent"]},
        "eval": {"benchmarks": ["gsm-hard"], "limit": 2},
        "sag": {"enabled": True, "n": 2, "temperature": 0.5},
    })
    results = distill.run_job(cfg, Console(record=True, width=150))
    assert results["student-agent"]["gsm-hard"] == 0.5 and results["student-agent+sag"]["gsm-hard"] == 0.5
    rows = {json.loads(x)["id"]: json.loads(x) for x in
            (tmp_path / "out" / "eval" / "student-agent" / "gsm-hard.jsonl").read_text().splitlines()}
    assert rows[gsm[0].id]["correct"] and rows[gsm[0].id]["steps"] == 1
    assert rows[gsm[0].id]["prediction"] in (13138980, "13138980")
    assert not rows[gsm[1].id]["correct"] and rows[gsm[1].id]["steps"] == 2  # out of steps
    # out of steps, the agent is asked for a final answer (as the paper's agent is): answered, marked as forced
    assert rows[gsm[0].id]["answered"] and not rows[gsm[0].id]["forced"]
    assert rows[gsm[1].id]["answered"] and rows[gsm[1].id]["forced"]
    answered = json.loads((tmp_path / "out" / "results.json").read_text())["answered"]
    assert answered["student-agent"] == {"gsm-hard": 1.0, "average": 1.0}
    assert "answered (%)" in (tmp_path / "out" / "results.md").read_text()
    steps = rows[gsm[0].id]["trajectory"]["steps"]
    assert steps[0]["code"].strip() == "final_answer(218983 * 2 * 30)" and steps[0]["is_final"]


def test_a_failing_compile_is_reported_and_the_job_goes_on(mlflow_store, tmp_path, monkeypatch):
    math = load_benchmark("math500", limit=1)
    lm, _ = scripted_lm({math[0].question[:60]: "r = 3\n\nAnswer: (3, pi/2)"})  # prose only: no agent code
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    cfg = parse_config({
        "run": {"experiment": "failjob", "output_dir": str(tmp_path / "out")},
        "task": {"max_steps": 1},
        "teacher": {"model": "scripted"}, "student": {"model": "scripted", "base_model": "smollm2-135m-instruct"},
        "trainset": {"benchmark": "math500", "split": "test", "limit": 1},
        "distill": {"variants": ["student-cot", "agent-distill"], "first_thought_prefix": False},
        "eval": {"benchmarks": ["math500"], "limit": 1},
        "sag": {"enabled": False},
    })
    console = Console(record=True, width=200)
    results = distill.run_job(cfg, console)
    assert list(results) == ["student-cot"] and results["student-cot"]["math500"] == 1.0
    text = console.export_text()
    assert "agent-distill failed:" in text and "not in the table: agent-distill" in text
    failed = json.loads((tmp_path / "out" / "results.json").read_text())["failed"]
    assert "no teacher trajectory passed the filter" in failed["agent-distill"]
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["failjob"], output_format="list")}
    assert "no teacher trajectory" in runs["compile:agent-distill"].data.tags["agentdistill.error"]


def test_teacher_reference_row_runs_the_teacher_lm_and_needs_no_trainset(mlflow_store, tmp_path, monkeypatch):
    gsm = load_benchmark("gsm-hard", limit=1)
    teacher_lm, teacher_engine = scripted_lm({gsm[0].question[:60]: "Thought: x\n```python\nfinal_answer(218983 * 2 * 30)\n```"})
    student_lm, student_engine = scripted_lm({})  # prose only: the student never answers in the agent format
    monkeypatch.setattr(distill, "make_lm",
                        lambda model, default_max_tokens=512: teacher_lm if model.model == "big" else student_lm)
    monkeypatch.setattr(distill, "load_trainset", lambda cfg: pytest.fail("reference rows need no trainset"))
    cfg = parse_config({
        "run": {"experiment": "refjob", "output_dir": str(tmp_path / "out")},
        "task": {"max_steps": 1},
        "teacher": {"model": "big"}, "student": {"model": "small"},
        "distill": {"variants": ["teacher-agent", "student-agent"]},
        "eval": {"benchmarks": ["gsm-hard"], "limit": 1},
        "sag": {"enabled": False},
    })
    results = distill.run_job(cfg, Console(record=True, width=150))
    assert results["teacher-agent"]["gsm-hard"] == 1.0 and results["student-agent"]["gsm-hard"] == 0.0
    # the student runs out of its one step without an answer: one step call + the out-of-steps final ask
    assert teacher_engine.calls == 1 and student_engine.calls == 2
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["refjob"], output_format="list")}
    assert runs["teacher-agent"].data.params["evaluated"] == "teacher"
    assert runs["student-agent"].data.params["evaluated"] == "student"
    assert "compile:teacher-agent" not in runs  # evaluated as is, never compiled


@pytest.mark.parametrize("family", ["math", "factual"])
def test_distill_variants_share_one_teacher_store_and_cot_key(tmp_path, monkeypatch, family):
    # agent-distill's first-thought prefixes come from the teacher's CoT answers; cot-distill trains on the same
    # answers: one store and one key, so the teacher writes each CoT answer once per job
    from agentdistill import optimizers
    from agentdistill.optimizers.first_thought import prefix_solver

    seen = {}

    def capture(self, student, *, trainset, teacher, valset=None):
        lm = teacher.step.lm if hasattr(teacher, "step") else teacher.solve.lm
        if isinstance(self, optimizers.AgentDistill):
            key = optimizers.cot_distill.cot_settings(prefix_solver(teacher, self.cot_instructions), lm)
        else:
            key = self.answer_settings(teacher, lm)
        seen[type(self).__name__] = (self.store_path, key)
        return student

    monkeypatch.setattr(optimizers.AgentDistill, "compile", capture)
    monkeypatch.setattr(optimizers.CoTDistill, "compile", capture)
    lm, _ = scripted_lm({})
    cfg = parse_config({
        "run": {"output_dir": str(tmp_path / "out")}, "task": {"family": family},
        "teacher": {"model": "unused", "max_tokens": 300}, "student": {"model": "scripted"},
        "distill": {"variants": ["cot-distill", "agent-distill"], "first_thought_prefix": True},
        **({"retrieval": {"url": "http://127.0.0.1:9/api/search"}} if family == "factual" else {}),
    })
    def search(query: str) -> str:
        """Wikipedia passages for a query."""
        return "no passages"

    for variant in ("cot-distill", "agent-distill"):
        distill.compile_variant(variant, cfg, lm, lm, [], search if family == "factual" else None, tmp_path / "out")
    assert seen["AgentDistill"] == seen["CoTDistill"]


def test_the_teacher_stage_fills_the_store_once_and_the_prefix_variant_gets_its_own_trajectories(tmp_path,
                                                                                                 monkeypatch):
    # `distill --stage teacher`: every distilled variant's teacher outputs, nothing trained; a rerun asks nothing
    train = load_benchmark("gsm-hard", limit=2)
    reply = "Thought: multiply.\n```python\nfinal_answer(218983 * 2 * 30)\n```"
    lm, engine = scripted_lm({train[0].question[:60]: reply})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    cfg = parse_config({
        "run": {"output_dir": str(tmp_path / "out")}, "task": {"max_steps": 1},
        "teacher": {"model": "scripted"}, "student": {"model": "scripted"},
        "trainset": {"benchmark": "gsm-hard", "split": "test", "limit": 2},
        "distill": {"variants": ["student-agent", "agent-distill", "agent-distill+ftp", "cot-distill"],
                    "first_thought_prefix": False},
    })
    report = teacher_stage.generate_teacher_outputs(cfg, Console(record=True, width=150))
    assert list(report) == ["agent-distill", "agent-distill+ftp", "cot-distill"]
    records = [json.loads(line) for line in (tmp_path / "out" / "teacher_store.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    # 2 trajectories without the prefix, 2 CoT answers (the prefixes' source, shared with cot-distill), 2 with it
    assert kinds.count("trajectory") == 4 and kinds.count("cot") == 2
    assert len({r["settings_hash"] for r in records if r["kind"] == "trajectory"}) == 2
    calls = engine.calls
    assert teacher_stage.generate_teacher_outputs(cfg, Console(record=True, width=150))["agent-distill"]["reused"] == 2
    assert engine.calls == calls  # everything came from the store


def test_sag_rows_only_for_the_listed_variants():
    cfg = parse_config({"teacher": {"model": "t"}, "student": {"model": "s"},
                        "distill": {"variants": ["student-agent", "agent-distill", "agent-distill+ftp"],
                                    "first_thought_prefix": False},
                        "sag": {"programs": ["agent"], "variants": ["agent-distill", "agent-distill+ftp"]}})
    assert cfg.variants() == ["student-agent", "agent-distill", "agent-distill+sag", "agent-distill+ftp",
                              "agent-distill+ftp+sag"]


def test_a_committed_seed_store_spares_the_teacher(tmp_path, monkeypatch):
    train = load_benchmark("gsm-hard", limit=2)
    reply = "Thought: multiply.\n```python\nfinal_answer(218983 * 2 * 30)\n```"
    lm, engine = scripted_lm({train[0].question[:60]: reply})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    base = {"task": {"max_steps": 1}, "teacher": {"model": "scripted"}, "student": {"model": "scripted"},
            "trainset": {"benchmark": "gsm-hard", "split": "test", "limit": 2},
            "distill": {"variants": ["agent-distill"], "first_thought_prefix": False}}
    first = parse_config({**base, "run": {"output_dir": str(tmp_path / "first")}})
    teacher_stage.generate_teacher_outputs(first, Console(record=True, width=150))
    asked = engine.calls
    seeded = parse_config({**base, "run": {"output_dir": str(tmp_path / "second")},
                           "distill": {**base["distill"], "seed_store": str(tmp_path / "first" / "teacher_store.jsonl")}})
    console = Console(record=True, width=200)
    report = teacher_stage.generate_teacher_outputs(seeded, console)
    assert engine.calls == asked and report["agent-distill"]["reused"] == 2  # nothing asked again
    assert "2 records merged from" in console.export_text()
