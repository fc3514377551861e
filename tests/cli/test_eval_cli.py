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
    assert "cot-smollm2-135m-instruct" in out and "50.0" in out  # the run name: program first, then the model
    jsonl = tmp_path / "ev" / "cot-smollm2-135m-instruct" / "aime.jsonl"
    rows = [json.loads(x) for x in jsonl.read_text().split("\n") if x]
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
    assert main(["eval", "--model", "m", "--benchmarks", "math500", "--max-steps", "0"]) == 2
    assert "--max-steps must be >= 1" in capsys.readouterr().out


def test_eval_opens_its_run_first_and_logs_every_setting(mlflow_store, tmp_path, monkeypatch):
    import time

    aime = load_benchmark("aime", limit=2)
    lm, engine = scripted_lm({aime[0].question[:60]: "Answer: 116"})
    calls = []
    complete = engine.complete
    engine.complete = lambda request: calls.append(time.time()) or complete(request)
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    common = ["eval", "--model", "smollm2-135m-instruct", "--program", "cot", "--benchmarks", "aime", "--limit", "2",
              "--max-tokens", "300", "--max-steps", "4", "--output-dir", str(tmp_path / "ev"), "--experiment", "ev"]
    assert main(common) == 0
    assert main(common + ["--sag", "2", "--sag-top-p", "0.9"]) == 0
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["ev"], output_format="list")}
    assert len(runs) == 2 and len({name[:20] for name in runs}) == 2  # the MLflow UI's runs list cuts names there
    plain = next(r for r in runs.values() if r.data.params["sag"] == "false")
    sag = next(r for r in runs.values() if r.data.params["sag"] == "true")
    # opened before the evaluation: the run's duration is the evaluation's
    assert plain.info.start_time / 1000 <= calls[0] and plain.info.end_time / 1000 >= calls[1]
    for run in (plain, sag):
        p = run.data.params
        assert (p["max_steps"], p["max_tokens"], p["split"], p["threads"]) == ("4", "300", "test", "1")
        assert run.data.metrics["eval_seconds"] > 0
    assert sag.data.params["sag_top_p"] == "0.9" and sag.data.params["sag_n"] == "2"
    assert plain.data.params["sag_top_p"] == "0.0"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(sag.info.run_id)]
    assert "eval_args.json" in artifacts
    summary = json.loads((tmp_path / "ev" / sag.info.run_name / "results.json").read_text())
    assert summary["accuracy"]["aime"] == 0.5  # on disk too, whatever happens to the store


def test_every_eval_option_says_what_it_does():
    import argparse

    from agentdistill.cli.main import build_parser

    parser = build_parser()
    eval_parser = parser._subparsers._group_actions[0].choices["eval"]
    for action in eval_parser._actions:
        if action.dest in ("help",):
            continue
        assert action.help, f"--{action.dest} has no help text"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "%(default)s" in action.help or str(action.default) in action.help, action.dest
