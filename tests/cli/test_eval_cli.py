"""`agentdistill eval` on a scripted LM: JSONL per benchmark, the MLflow run, and argument errors."""

import json

import mlflow

from agentdistill.benchmarks import load_benchmark
from agentdistill.cli import distill
from agentdistill.cli.main import main
from tests.cli.question_lm import scripted_lm


def test_eval_cot_writes_jsonl_and_logs_run(mlflow_store, tmp_path, monkeypatch, capsys):
    aime = load_benchmark("aime", limit=2)
    lm, _ = scripted_lm({aime[0].question[:60]: "work...\n\nAnswer: 116", aime[1].question[:60]: "Answer: 1"})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    code = main(["eval", "--model", "smollm2-135m-instruct", "--program", "cot", "--benchmarks", "aime",
                 "--limit", "2", "--output-dir", str(tmp_path / "ev"), "--experiment", "ev"])
    assert code == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct-cot" in out and "50.0" in out
    rows = [json.loads(x) for x in (tmp_path / "ev" / "smollm2-135m-instruct-cot" / "aime.jsonl").read_text().split("\n")
            if x]
    assert {r["id"]: r["correct"] for r in rows} == {aime[0].id: True, aime[1].id: False}
    assert rows[0]["tokens"] is not None and rows[0]["seconds"] >= 0
    run = mlflow.search_runs(experiment_names=["ev"], output_format="list")[0]
    assert run.data.metrics["accuracy/aime"] == 0.5 and run.data.params["program"] == "cot"


def test_eval_argument_errors(mlflow_store, capsys):
    assert main(["eval", "--model", "m", "--benchmarks", "hotpotqa", "--program", "agent", "--limit", "1"]) == 2
    assert "needs a search index: --index" in capsys.readouterr().out
    assert main(["eval", "--model", "m", "--benchmarks", "hotpotqa", "math500", "--limit", "1"]) == 2
    assert "mix math and factual" in capsys.readouterr().out
    assert main(["eval", "--model", "m", "--benchmarks", "bamboogle"]) == 2
    assert "no test file for benchmark 'bamboogle'" in capsys.readouterr().out
