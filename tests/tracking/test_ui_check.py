"""The real-browser check: `mlflow server` on loopback + headless Chromium show the runs and metrics (slow)."""

import shutil
from pathlib import Path

import pytest

from agentdistill.tracking import ui_check


@pytest.mark.slow
def test_mlflow_ui_shows_runs_and_metrics(tmp_path, mlflow_store):  # the fixture restores MLflow's global URI
    browser = ui_check.find_chromium()
    assert browser is not None, "install Chromium for this test (Debian: apt-get install -y chromium)"
    store = tmp_path / "store"
    store.mkdir()
    uri = ui_check.make_demo_store(store, "ui-check")
    problems = ui_check.check(uri, "ui-check", tmp_path / "shots", browser)
    assert problems == []
    for page in ("runs", "compare"):
        png = tmp_path / "shots" / f"{page}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    dom = (tmp_path / "shots" / "compare.html").read_text()
    assert "accuracy/average" in dom and "accuracy/gsm-hard" in dom and "agent-distill+sag" in dom
    assert shutil.which(Path(browser).name)
