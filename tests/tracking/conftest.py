"""Shared fixtures: a temporary MLflow store (see tests/tracking/store.py)."""

from tests.tracking.store import mlflow_store  # noqa: F401
