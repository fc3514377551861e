"""File helpers shared by the caches (exports, indexes, checkpoints): read a JSON record that may be absent.

    from agentdistill.files import read_json_object
    read_json_object(folder / "record.json")     # {} when missing, unreadable, not JSON, or not an object
"""

from __future__ import annotations

import json
from pathlib import Path


def read_json_object(path: Path) -> dict:
    """The JSON object in `path`, or {} (a cache record that is missing or damaged simply does not match)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
