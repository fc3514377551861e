"""Tracking helpers: the default store, metric/param names, nested runs."""

import mlflow

from agentdistill import tracking


def test_default_store_is_sqlite_in_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.default_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.default_tracking_uri() == "http://127.0.0.1:5000"


def test_names_and_flattening():
    assert tracking.metric_key("gsm-hard") == "accuracy/gsm-hard"
    assert tracking.metric_key("hotpotqa", "f1") == "f1/hotpotqa"
    flat = tracking.flatten_params({"variant": "agent", "sft": {"lora_r": 16, "epochs": 2.0}, "n": [1, 2]})
    assert flat == {"variant": "agent", "sft.lora_r": "16", "sft.epochs": "2.0", "n": "[1, 2]"}


def test_start_run_logs_params_tags_and_accuracies(mlflow_store):
    uri = mlflow_store
    with tracking.start_run("agent-distill", experiment="t", tracking_uri=uri, params={"variant": "agent-distill"}):
        logged = tracking.log_accuracies({"math500": 0.25, "gsm-hard": 0.75})
        with tracking.start_run("child", nested=True, kind="compile") as child:
            child_id = child.info.run_id
    assert logged["accuracy/average"] == 0.5
    run = mlflow.search_runs(experiment_names=["t"], filter_string="attributes.run_name = 'agent-distill'",
                             output_format="list")[0]
    assert run.data.metrics == {"accuracy/math500": 0.25, "accuracy/gsm-hard": 0.75, "accuracy/average": 0.5}
    assert run.data.params == {"variant": "agent-distill"} and run.data.tags[tracking.TAG_KIND] == "variant"
    child = mlflow.get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == run.info.run_id and child.data.tags[tracking.TAG_KIND] == "compile"
