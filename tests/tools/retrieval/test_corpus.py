"""Reading corpora: the formats, and clear errors for a missing file, an empty corpus, a line without text."""

import gzip
import json

import pytest

from agentdistill.tools.retrieval.corpus import CorpusError, Passage, read_corpus


def test_reads_jsonl_with_titles(tiny_corpus_path):
    passages = read_corpus(tiny_corpus_path)
    assert len(passages) == 50
    assert all(isinstance(p, Passage) and p.text and p.title for p in passages)
    assert passages[0].colbert_text() == f"{passages[0].title} | {passages[0].text}"


def test_reads_gzip_and_defaults_ids(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"text": "Paris is the capital of France."}) + "\n\n")
        f.write(json.dumps({"title": "Rome", "text": "Rome is  the capital\nof Italy."}) + "\n")
    passages = read_corpus(path)
    assert [p.id for p in passages] == ["0", "2"]  # 0-based line index (the blank line still counts)
    assert passages[1] == Passage("2", "Rome", "Rome is the capital of Italy.")


def test_reads_colbert_tsv_and_headed_tsv(tmp_path):
    plain = tmp_path / "collection.tsv"
    plain.write_text("0\tParis is in France.\tParis\n1\tRome is in Italy.\tRome\n")
    assert read_corpus(plain)[1] == Passage("1", "Rome", "Rome is in Italy.")
    headed = tmp_path / "headed.tsv"
    headed.write_text("title\tid\ttext\nParis\tp1\tParis is in France.\n")
    assert read_corpus(headed) == [Passage("p1", "Paris", "Paris is in France.")]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CorpusError, match="corpus file not found: .*nope.jsonl"):
        read_corpus(tmp_path / "nope.jsonl")


def test_empty_corpus_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(path)


@pytest.mark.parametrize("line", ['{"id": "a", "title": "T"}', '{"id": "a", "text": "   "}', '{"text": 42}'])
def test_line_without_text_names_the_line(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: passage has no text"):
        read_corpus(path)


def test_tsv_line_without_text(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("0\tfine\tT\n1\n")
    with pytest.raises(CorpusError, match=r"bad.tsv:2: passage has no text"):
        read_corpus(path)


def test_invalid_json_and_duplicate_ids_and_unknown_format(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: not valid JSON"):
        read_corpus(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n')
    with pytest.raises(CorpusError, match="'x' appears twice"):
        read_corpus(dup)
    with pytest.raises(CorpusError, match="unknown corpus format"):
        (tmp_path / "c.csv").write_text("a,b\n")
        read_corpus(tmp_path / "c.csv")
