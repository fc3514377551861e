"""Stores for tests: a fresh MLflow sqlite store per test, copied from one migrated template (creating a store costs
~5 s), and the URL of a tracking server that is not there."""

import atexit
import shutil
import socket
import tempfile
from pathlib import Path

import mlflow
import pytest

_template: Path | None = None


def _template_db() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="agentdistill-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # migrates
        _template = folder / "mlflow.db"
    return _template


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """MLFLOW_TRACKING_URI -> a new sqlite store in tmp_path; the test runs in tmp_path (artifacts: ./mlruns)."""
    shutil.copy(_template_db(), tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # an experiment set by an earlier test (mlflow.set_experiment) names an id of ANOTHER store: forget it
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mlflow.clear_active_model()  # likewise a model logged by an earlier test: metrics would be linked to it
    yield uri
    mlflow.clear_active_model()
    mlflow.set_tracking_uri(None)  # forget the global URI; monkeypatch then restores the environment


def refused_url() -> str:
    """An http URL on a loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
