"""A resumable JSONL store of teacher outputs (trajectories, first-thought prefixes, CoT answers).

Each record is one JSON line, appended and fsynced the moment a teacher run finishes, so a crash (even
`kill -9`) loses at most the line being written. Records are keyed by (kind, example id, settings hash):
the settings hash covers everything that shapes the output (teacher model, prompt, prefix on/off, max
steps), so changing a setting makes new keys instead of silently reusing stale answers.

    from agentdistill.optimizers.store import TrajectoryStore, settings_hash, example_id
    store = TrajectoryStore("runs/math.jsonl")
    key = settings_hash(teacher="qwen", prefix=True, max_steps=5)
    if store.get("trajectory", example_id(ex), key) is None:
        store.put("trajectory", example_id(ex), key, trajectory.to_json())

A torn last line (the process died mid-write) is ignored on load and cut off before the next append, so
the file stays valid JSONL.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator


def _digest(obj: Any, n: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def settings_hash(**settings: Any) -> str:
    """A short stable hash of the settings that shape a teacher output (order of keywords does not matter)."""
    return _digest(settings)


def example_id(example: Any) -> str:
    """A stable id for a training example: its `id` field (if any) plus a hash of its inputs.

    The input hash keeps two sets that both number their examples 0, 1, 2... from colliding in one store.
    """
    try:
        inputs = dict(example.inputs())
    except Exception:  # an Example without with_inputs(): hash all of it but the labels we know of
        inputs = {k: v for k, v in dict(example).items() if k not in {"answer", "id"}}
    digest = _digest(inputs, n=10)
    raw_id = example.get("id") if hasattr(example, "get") else None
    return f"{raw_id}-{digest}" if raw_id is not None else digest


class TrajectoryStore:
    """Append-only JSONL file of records keyed by (kind, example_id, settings_hash); thread-safe.

    Args:
        path: the JSONL file (created with its folder on the first append).

    Later records with the same key win (a rerun that re-asked the teacher supersedes the old answer).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], dict] = {}
        self.torn_lines = 0  # lines that could not be parsed (a torn write); reported, never fatal
        self._load()

    # -- reading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                    key = (rec["kind"], rec["example_id"], rec["settings_hash"])
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                    self.torn_lines += 1
                    continue
                self._records[key] = rec

    def get(self, kind: str, example_id: str, settings_hash: str) -> dict | None:
        """The stored payload (`data`) for this key, or None when the teacher has not answered it yet."""
        rec = self._records.get((kind, example_id, settings_hash))
        return None if rec is None else rec["data"]

    def has(self, kind: str, example_id: str, settings_hash: str) -> bool:
        return (kind, example_id, settings_hash) in self._records

    def records(self, kind: str | None = None, settings_hash: str | None = None) -> Iterator[dict]:
        """Full records ({kind, example_id, settings_hash, data}) in first-written order."""
        for (k, _, h), rec in list(self._records.items()):
            if (kind is None or k == kind) and (settings_hash is None or h == settings_hash):
                yield rec

    def __len__(self) -> int:
        return len(self._records)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, kind: str, example_id: str, settings_hash: str, data: Any) -> None:
        """Append one record and fsync it before returning (so it survives a kill right after)."""
        rec = {"kind": kind, "example_id": example_id, "settings_hash": settings_hash, "data": data}
        line = json.dumps(rec, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._records[(kind, example_id, settings_hash)] = rec

    def _repair_tail(self) -> None:
        # A torn last line has no trailing newline; cut it off so the next record starts on its own line.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)  # rfind == -1 -> truncate(0): the only line was torn
            f.flush()
            os.fsync(f.fileno())

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.path)!r}, records={len(self)})"
