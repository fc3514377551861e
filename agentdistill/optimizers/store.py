"""A resumable JSONL store of teacher outputs (trajectories, first-thought prefixes, CoT answers).

Each record is one JSON line, appended and fsynced the moment a teacher run finishes, so a crash (even
`kill -9`) loses at most the line being written. Records are keyed by (kind, example id, settings hash):
the settings hash covers everything that shapes the output (teacher model and sampling settings, prompt and
template files, tools and what backs them, sandbox limits, prefix on/off, max steps), so changing a setting
makes new keys instead of silently reusing stale answers. The pieces of those keys that several teleprompters
share live here: `lm_settings`, `tool_fingerprint`, `template_digest`.

    from agentdistill.optimizers.store import TrajectoryStore, settings_hash, example_id
    store = TrajectoryStore("runs/math.jsonl")
    key = settings_hash(teacher="qwen", prefix=True, max_steps=5)
    if store.get("trajectory", example_id(ex), key) is None:
        store.put("trajectory", example_id(ex), key, trajectory.to_json())

A torn last line (the process died mid-write) is ignored on load and cut off before the next append, so
the file stays valid JSONL.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # the renderer's jinja files (rendering.py)


def _digest(obj: Any, n: int = 12) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def settings_hash(**settings: Any) -> str:
    """A short stable hash of the settings that shape a teacher output (order of keywords does not matter)."""
    return _digest(settings)


# LM kwargs that say how to reach a model, not what it generates: moving a server or rotating a key keeps the store.
_TRANSPORT = {"api_key", "api_base", "base_url", "api_version", "timeout", "request_timeout", "num_retries",
              "headers", "extra_headers", "callbacks"}


def lm_settings(lm: Any) -> dict:
    """What of an LM shapes its outputs: its model name (the local engine's encodes the checkpoint) and every
    generation kwarg (temperature, top_p, max_tokens, stop, seed, ...), without credentials and transport."""
    name = str(getattr(lm, "model", None) or type(lm).__name__)
    kwargs = {k: v for k, v in (getattr(lm, "kwargs", None) or {}).items() if k not in _TRANSPORT and v is not None}
    return {"model": name, "kwargs": kwargs}


def template_digest(*families: str) -> str:
    """A hash of the contents of the prompt templates whose names start with one of `families` ("agent", "cot";
    "task.jinja" is in every family): editing a template changes the prompt, so it must change the keys."""
    names = sorted(p.name for p in TEMPLATES.glob("*.jinja")
                   if p.name == "task.jinja" or any(p.name.startswith(f) for f in families))
    if not names:
        raise FileNotFoundError(f"no prompt templates under {TEMPLATES}; is the agentdistill package installed whole?")
    return _digest({n: (TEMPLATES / n).read_text(encoding="utf-8") for n in names})


def tool_fingerprint(tool: Any, _depth: int = 0) -> Any:
    """What backs a tool, for store keys: two tools with the same name and docstring can search different indexes
    or return a different number of passages, and then give different trajectories.

    The tool's own `fingerprint()` (or `settings()`) when it has one; else its name plus its bound settings: the
    simple public attributes of a tool object (a search tool's index path, manifest, k, ...), the arguments of a
    functools.partial, the owner of a bound method, the code, defaults and closure of a function.
    """
    if _depth > 3:  # a settings graph deeper than this is not a tool's configuration
        return type(tool).__qualname__
    for method in ("fingerprint", "settings"):
        fn = getattr(tool, method, None)
        if callable(fn) and not isinstance(tool, type):
            return {"tool": _name(tool), method: _plain(fn(), _depth)}
    if isinstance(tool, functools.partial):
        return {"partial": tool_fingerprint(tool.func, _depth + 1), "args": _plain(tool.args, _depth),
                "keywords": _plain(tool.keywords, _depth)}
    if inspect.ismethod(tool):
        return {"method": tool.__func__.__qualname__, "self": tool_fingerprint(tool.__self__, _depth + 1)}
    if inspect.isfunction(tool):
        code = tool.__code__
        closure = [c.cell_contents for c in (tool.__closure__ or ()) if _has_contents(c)]
        return {"function": f"{tool.__module__}.{tool.__qualname__}",
                "code": _code_digest(code),
                "defaults": _plain(tool.__defaults__, _depth), "closure": _plain(closure, _depth)}
    inner = getattr(tool, "func", None)  # dspy.Tool wraps the function
    if inner is not None and callable(inner) and inner is not tool:
        return {"tool": _name(tool), "func": tool_fingerprint(inner, _depth + 1)}
    attrs = {k: v for k, v in vars(tool).items() if not k.startswith("_")} if hasattr(tool, "__dict__") else {}
    return {"tool": _name(tool), "type": type(tool).__qualname__, "settings": _plain(attrs, _depth)}


def _code_digest(code) -> str:
    # nested functions' code objects are constants whose repr holds a memory address: hash them, not their repr
    consts = [_code_digest(c) if inspect.iscode(c) else repr(c) for c in code.co_consts]
    return hashlib.sha256(code.co_code + json.dumps(consts).encode()).hexdigest()[:12]


def _name(tool) -> str:
    return str(getattr(tool, "name", None) or getattr(tool, "__name__", None) or type(tool).__name__)


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell (a variable not assigned yet)
        return False
    return True


_SMALL = 20_000  # characters: a container bigger than this is data (a corpus), not a setting; it counts by size


def _plain(value: Any, depth: int) -> Any:
    """A JSON-able summary of a setting: scalars as they are, small containers in full, callables and objects by
    their own fingerprint, big containers (a list of 50k passages) by type and length only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = None
        if text is not None and len(text) <= _SMALL and "object at 0x" not in text:
            return json.loads(text)
        if isinstance(value, dict):
            return {str(k): _plain(v, depth + 1) for k, v in list(value.items())[:50]} if len(value) <= 50 else \
                {"type": "dict", "len": len(value)}
        return {"type": type(value).__name__, "len": len(value)}
    return tool_fingerprint(value, depth + 1)


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

    def merge_from(self, other: str | os.PathLike) -> int:
        """Append the records of another store file that this one lacks (e.g. a committed set of teacher
        trajectories); returns how many were added. Only records whose keys the current settings produce are ever
        read back, so a file made with other settings adds lines that nothing uses."""
        source = TrajectoryStore(other)
        if not source.path.is_file():
            raise FileNotFoundError(f"teacher store {source.path} does not exist")
        added = 0
        for rec in source.records():
            if not self.has(rec["kind"], rec["example_id"], rec["settings_hash"]):
                self.put(rec["kind"], rec["example_id"], rec["settings_hash"], rec["data"])
                added += 1
        return added

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.path)!r}, records={len(self)})"
