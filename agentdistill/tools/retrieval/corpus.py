"""Reading a passage corpus: JSONL (optionally .gz) or TSV, with errors that name the line and the fix.

    from agentdistill.tools.retrieval.corpus import read_corpus
    passages = read_corpus("passages.jsonl.gz")      # -> list[Passage(id, title, text)]

Formats
- JSONL: one object per line with "text" (required), "title" (optional) and "id" (optional; default: line number).
- TSV: ColBERT's collection format `pid<TAB>text[<TAB>title]`, or any column order with a header line naming
  `id`, `text`, `title`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


class CorpusError(ValueError):
    """The corpus file cannot be used as it is; the message says where and how to fix it."""


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def colbert_text(self) -> str:
        # ColBERT's own convention for titled collections ("title | text"), what colbertv2.0 was trained on.
        return f"{self.title} | {self.text}" if self.title else self.text


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (decides whether an existing index can be reused)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_corpus(path: str | Path, limit: int | None = None) -> list[Passage]:
    """Read passages from a .jsonl/.jsonl.gz/.tsv/.tsv.gz file. Raises CorpusError on anything unusable."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}. Pass a JSONL or TSV file of passages (id, title, text).")
    kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if kind not in {"jsonl", "json", "tsv"}:
        raise CorpusError(f"{path}: unknown corpus format {kind!r}; use .jsonl (one JSON object per line) or .tsv")
    with _open(path) as f:
        passages = _read_tsv(f, path, limit) if kind == "tsv" else _read_jsonl(f, path, limit)
    if not passages:
        raise CorpusError(f"{path}: the corpus is empty (no passages). Add at least one line with a non-empty text.")
    seen: set[str] = set()
    for p in passages:
        if p.id in seen:
            raise CorpusError(f"{path}: passage id {p.id!r} appears twice; ids must be unique (or leave them out).")
        seen.add(p.id)
    return passages


def _passage(path: Path, lineno: int, pid, title, text) -> Passage:
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(
            f"{path}:{lineno}: passage has no text (a non-empty string field \"text\" is required on every line); "
            "fix or remove that line."
        )
    title = "" if title is None else str(title)
    return Passage(id=str(lineno - 1) if pid is None else str(pid), title=title.strip(), text=" ".join(text.split()))


def _read_jsonl(f, path: Path, limit: int | None) -> list[Passage]:
    passages = []
    for lineno, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{lineno}: not valid JSON ({e.msg}); each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{path}:{lineno}: expected a JSON object with a \"text\" field, got {type(obj).__name__}")
        passages.append(_passage(path, lineno, obj.get("id", obj.get("pid")), obj.get("title"), obj.get("text")))
        if limit is not None and len(passages) >= limit:
            break
    return passages


def _read_tsv(f, path: Path, limit: int | None) -> list[Passage]:
    passages = []
    columns = {"id": 0, "text": 1, "title": 2}  # ColBERT's collection.tsv order
    for lineno, line in enumerate(f, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cells = line.split("\t")
        if lineno == 1 and "text" in [c.strip().lower() for c in cells]:
            columns = {c.strip().lower(): i for i, c in enumerate(cells)}
            continue
        def cell(name):
            i = columns.get(name)
            return cells[i] if i is not None and i < len(cells) else None
        passages.append(_passage(path, lineno, cell("id"), cell("title"), cell("text")))
        if limit is not None and len(passages) >= limit:
            break
    return passages


def write_jsonl(passages: list[Passage], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}, ensure_ascii=False) + "\n")
