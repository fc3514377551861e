"""Is the MLflow tracking store there? A fast, bounded probe before any work, so a dead store is found in seconds.

    from agentdistill.tracking.probe import TrackingStoreError, check_store, store_lost
    check_store("http://127.0.0.1:5000", where="$MLFLOW_TRACKING_URI")
    # TrackingStoreError: $MLFLOW_TRACKING_URI: MLflow tracking store http://127.0.0.1:5000 is not reachable
    # (connection refused). Fix: start it (...), point ... at a store that answers, or unset ...

MLflow's own client retries an unreachable server for about 4 minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES=7 with
exponential backoff) and only then fails, after the work is done. The probe asks once, with a short timeout:
- http(s):// - one GET of the experiments search endpoint, no retries;
- sqlite:/// - the database file must be an SQLite database, or its folder creatable (nothing is written: a dry
  run leaves no mlflow.db behind);
- file:// or a plain folder - the folder must be creatable;
- anything else (databricks, postgresql, ...) - MLflow's client lists one experiment, bounded by the timeout.

`bounded_http_retries()` lowers MLflow's retry budget for the command line (a store that dies mid-run costs
seconds, not minutes); `store_lost(error, uri)` tells a failed MLflow call of a lost store from other errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

PROBE_SECONDS = 5.0
# the command line's retry budget: 2 retries with MLflow's backoff (2 s, 4 s) and 30 s per request, instead of
# 7 retries and 120 s; a user's own MLFLOW_HTTP_REQUEST_* settings win
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class TrackingStoreError(RuntimeError):
    """The MLflow tracking store cannot be used; the message names the URI, where it came from, and the fix."""


def _fix(uri: str) -> str:
    local = "unset MLFLOW_TRACKING_URI (and [run] tracking_uri) to use the local sqlite:///mlflow.db"
    if uri.startswith(("http://", "https://")):
        return (f"Fix: start the server (e.g. `mlflow server --host 127.0.0.1 --port 5000`), point "
                f"MLFLOW_TRACKING_URI / [run] tracking_uri / --tracking-uri at a store that answers, or {local}")
    return f"Fix: point MLFLOW_TRACKING_URI / [run] tracking_uri / --tracking-uri at a usable store, or {local}"


def _error(uri: str, where: str, problem: str) -> TrackingStoreError:
    prefix = f"{where}: " if where else ""
    return TrackingStoreError(f"{prefix}MLflow tracking store {uri} {problem}. {_fix(uri)}.")


def short_reason(error: BaseException) -> str:
    """'connection refused', 'timed out', ... from requests/urllib3/MLflow's long exception texts."""
    text = str(error)
    for pattern, reason in ((r"Connection refused", "connection refused"), (r"timed out|Timeout", "timed out"),
                            (r"Name or service not known|nodename nor servname|getaddrinfo failed|NameResolution",
                             "unknown host name"),
                            (r"Network is unreachable", "network unreachable"),
                            (r"SSLError|CERTIFICATE_VERIFY_FAILED", "TLS/SSL error")):
        if re.search(pattern, text):
            return reason
    return f"{type(error).__name__}: {text[:200]}"


def check_store(uri: str | None = None, *, where: str = "", timeout: float = PROBE_SECONDS) -> str:
    """The store's URI if it can be used (uri None: $MLFLOW_TRACKING_URI or ./mlflow.db); else TrackingStoreError.

    `where` names the setting the URI came from ("$MLFLOW_TRACKING_URI", "[run] tracking_uri", "--tracking-uri").
    """
    from agentdistill import tracking

    if uri is None:
        uri = tracking.default_tracking_uri()
        where = where or ("$MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "")
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_http(uri, where, timeout)
    elif scheme == "sqlite":
        _check_sqlite(uri, where)
    elif scheme in ("", "file") or re.fullmatch(r"[A-Za-z]", scheme):  # a folder (C: is a drive, not a scheme)
        folder = Path(unquote(urlparse(uri).path)) if scheme == "file" else Path(uri)
        problem = folder_problem(folder)
        if problem:
            raise _error(uri, where, f"cannot be used: {problem}")
    else:
        _check_with_client(uri, where, timeout)
    return uri


def _check_http(uri: str, where: str, timeout: float) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "GET",
                                max_retries=0, timeout=timeout, params={"max_results": 1})
    except (MlflowException, OSError) as e:
        raise _error(uri, where, f"is not reachable ({short_reason(e)})") from e
    if response.status_code in (401, 403):
        raise _error(uri, where, f"refused the credentials (HTTP {response.status_code}): set "
                                 "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD")
    if response.status_code != 200:
        raise _error(uri, where, f"answered HTTP {response.status_code} to an experiments search: it is not an "
                                 "MLflow tracking server, or not at this path")


def _check_sqlite(uri: str, where: str) -> None:
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    db = Path(unquote(path))
    if db.is_dir():
        raise _error(uri, where, f"cannot be used: {db} is a folder, not a database file")
    if db.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=PROBE_SECONDS)) as con:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as e:
            raise _error(uri, where, f"cannot be used: {db} is not an SQLite database, or not writable ({e})") from e
        return
    problem = folder_problem(db.parent)
    if problem:
        raise _error(uri, where, f"cannot be created: {problem}")


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be created (or written), or None; creates nothing."""
    folder = Path(folder).expanduser().absolute()
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        return None if os.access(folder, os.W_OK | os.X_OK) else f"{folder} is not writable"
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None


def _check_with_client(uri: str, where: str, timeout: float) -> None:
    import mlflow

    failure: list[BaseException] = []

    def probe():
        try:
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except BaseException as e:  # noqa: BLE001 - reported below
            failure.append(e)

    thread = threading.Thread(target=probe, daemon=True, name="mlflow-store-probe")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _error(uri, where, f"did not answer within {timeout:.0f} s")
    if failure:
        raise _error(uri, where, f"is not usable ({short_reason(failure[0])})") from failure[0]


def store_lost(error: BaseException, uri: str) -> TrackingStoreError | None:
    """After an MLflow call failed with `error`: a TrackingStoreError if the store at `uri` no longer answers
    (probed again, quickly), else None (the error is something else, e.g. a bad parameter)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, (MlflowException, OSError)):
        return None
    try:
        check_store(uri, timeout=2.0)
    except TrackingStoreError:
        return TrackingStoreError(f"MLflow tracking store {uri} stopped answering during the run "
                                  f"({short_reason(error)})")
    return None


@contextlib.contextmanager
def bounded_http_retries():
    """MLflow's HTTP retry budget lowered to HTTP_RETRY_DEFAULTS for the block (user settings win), then restored."""
    added = {k: v for k, v in HTTP_RETRY_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
