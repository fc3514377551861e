"""The tracking-store probe: a store that is not there is found in seconds, before any work, with the fix."""

import sqlite3
import time

import pytest

from agentdistill.tracking.probe import TrackingStoreError, check_store
from tests.tracking.store import refused_url


def test_an_unreachable_server_fails_in_seconds_with_the_uri_and_the_fix():
    url = refused_url()
    start = time.monotonic()
    with pytest.raises(TrackingStoreError) as err:
        check_store(url, where="$MLFLOW_TRACKING_URI")
    assert time.monotonic() - start < 10  # MLflow's own client retries for ~4 minutes
    message = str(err.value)
    assert url in message and "$MLFLOW_TRACKING_URI" in message and "connection refused" in message.lower()
    assert "mlflow server" in message and "sqlite:///mlflow.db" in message  # the fixes: start it, or go local
    assert len(message.splitlines()) == 1


def test_a_local_sqlite_store_passes_without_being_created(tmp_path):
    db = tmp_path / "new" / "mlflow.db"
    assert check_store(f"sqlite:///{db}") == f"sqlite:///{db}"
    assert not db.exists() and not db.parent.exists()  # the probe (a dry run too) writes nothing


def test_a_sqlite_store_in_a_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "a_file").write_text("")
    uri = f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}"
    with pytest.raises(TrackingStoreError, match="is a file, not a folder"):
        check_store(uri, where="[run] tracking_uri")


def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    with pytest.raises(TrackingStoreError, match="not an SQLite database"):
        check_store(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_an_existing_sqlite_store_passes(mlflow_store):
    assert check_store(mlflow_store) == mlflow_store
    sqlite3.connect(mlflow_store.removeprefix("sqlite:///")).close()


def test_a_web_server_that_is_not_mlflow_is_named(tmp_path):
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(TrackingStoreError, match="HTTP 404.*not an MLflow tracking server"):
            check_store(url)
    finally:
        server.shutdown()
        server.server_close()
