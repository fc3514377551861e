"""Test-wide settings: offline, memory-only DSPy cache, and a guard that fails any non-loopback connection."""

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///:memory:")  # tests that track set their own temp store

import agentdistill  # noqa: E402,F401  (applies the offline defaults before dspy is imported)


class NetworkAccessError(RuntimeError):
    pass


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    return host in {"localhost", "::1", "0.0.0.0", ""} or host.startswith("127.")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
attempts: list = []  # every refused destination, for tests/test_offline.py


def _guarded(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            attempts.append(address)
            raise NetworkAccessError(f"test tried to reach {address!r}: tests must stay offline")
        return real(self, address)

    return connect


socket.socket.connect = _guarded(_real_connect)
socket.socket.connect_ex = _guarded(_real_connect_ex)


@pytest.fixture(autouse=True, scope="session")
def _memory_only_dspy_cache():
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    yield


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_experiment():
    # mlflow.set_experiment() writes MLFLOW_EXPERIMENT_ID into os.environ; a later test with another store (or a
    # subprocess that inherits the environment) would then look for an experiment id that its store lacks.
    before = os.environ.get("MLFLOW_EXPERIMENT_ID")
    yield
    if before is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = before


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_restored():
    """A test that points MLflow at a store (mlflow.set_tracking_uri, e.g. through the CLI) leaves it process-wide
    after its environment is restored; later tests would track into (or probe) that store. Put it back."""
    from mlflow.tracking._tracking_service import utils

    saved = utils._tracking_uri
    yield
    utils._tracking_uri = saved
