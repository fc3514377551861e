"""The package's own wiring: offline defaults, home folder, CLI entry point."""

import os
import subprocess
import sys

from agentdistill import settings


def test_offline_defaults_are_set_on_import():
    for key in settings.OFFLINE_DEFAULTS:
        assert key in os.environ, key
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert os.environ["DSPY_CACHEDIR"]


def test_home_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path / "h"))
    assert settings.home() == tmp_path / "h"
    monkeypatch.delenv("AGENTDISTILL_HOME")
    assert settings.home().parts[-2:] == (".cache", "agentdistill")


def test_console_script_answers_help():
    out = subprocess.run([sys.executable, "-m", "agentdistill.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "agentdistill" in out.stdout


def test_user_settings_win_over_defaults(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    settings.apply_offline_defaults()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
