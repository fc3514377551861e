"""Process-wide settings: offline defaults and the project's home folder.

Imported first by `agentdistill/__init__.py`, before dspy/litellm/mlflow/transformers, because
these libraries read their environment variables at import time.

    AGENTDISTILL_HOME   cache + indexes + converted models (default ~/.cache/agentdistill)
"""

import os
from pathlib import Path

# setdefault: a user who is online (or wants another cache) overrides any of these in the environment.
OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm would fetch a price list from GitHub at import
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",  # we fork sandbox workers; fork-after-tokenizer warnings otherwise
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("DSPY_CACHEDIR", str(home() / "dspy_cache"))


def home() -> Path:
    """The project's home folder (converted models, indexes, caches)."""
    return Path(os.environ.get("AGENTDISTILL_HOME") or Path.home() / ".cache" / "agentdistill")
