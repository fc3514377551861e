"""`agentdistill distill configs/smoke.toml` with the shipped models: the whole job, tiny (slow: minutes)."""

import json
from pathlib import Path

import mlflow
import pytest

from agentdistill.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_config_runs_end_to_end(mlflow_store, tmp_path, capsys):
    # the job runs in tmp_path (the fixture's cwd), where config paths are read from: point at the shipped file
    config = (ROOT / "configs" / "smoke.toml").read_text()
    config = config.replace('"configs/data/smoke_train.json"', json.dumps(str(ROOT / "configs/data/smoke_train.json")))
    (tmp_path / "smoke.toml").write_text(config)
    assert main(["distill", str(tmp_path / "smoke.toml")]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "runs" / "smoke" / "results.json").read_text())["results"]
    assert list(results) == ["student-agent", "student-agent+sag", "agent-distill", "agent-distill+sag"]
    for accs in results.values():
        assert set(accs) == {"gsm-hard", "average"} and 0.0 <= accs["average"] <= 1.0
    assert "agent-distill+sag" in out and "average" in out
    names = {r.info.run_name for r in mlflow.search_runs(experiment_names=["smoke"], output_format="list")}
    assert {"student-agent", "agent-distill", "agent-distill+sag", "compile:agent-distill", "comparison"} <= names
    rows = (tmp_path / "runs" / "smoke" / "eval" / "agent-distill" / "gsm-hard.jsonl").read_text().splitlines()
    assert len(rows) == 3
    runs = mlflow.search_runs(experiment_names=["smoke"], output_format="list")
    kept = [r.data.metrics["kept_trajectories"] for r in runs if "kept_trajectories" in r.data.metrics]
    assert kept and kept[0] >= 1  # the student really was trained on teacher trajectories
