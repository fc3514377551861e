"""`agentdistill index ...` end to end on the tiny corpus (in-process, through the real argument parser)."""

import json

from agentdistill.cli import index as index_cli
from agentdistill.tools.retrieval import open_search


def _main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="agentdistill")
    index_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_build_reuses_then_search_prints_the_tool_text(tiny_index, tiny_corpus_path, base_checkpoint, capsys):
    assert _main(["index", "build", str(tiny_corpus_path), "--name", "tiny", "--checkpoint", base_checkpoint]) == 0
    assert "reused index 'tiny'" in capsys.readouterr().out
    query = "Nelson Rockefeller vice president"
    assert _main(["index", "search", "tiny", query, "-k", "2"]) == 0  # the default: the hybrid
    captured = capsys.readouterr()
    assert captured.out.strip() == open_search(tiny_index.path).as_tool(k=2)(query).strip()
    assert "hybrid" in captured.err
    assert _main(["index", "search", "tiny", query, "-k", "2", "--mode", "colbert"]) == 0
    assert capsys.readouterr().out.strip() == tiny_index.as_tool(k=2)(query).strip()
    assert _main(["index", "search", "tiny", "Nelson Rockefeller", "-k", "2", "--json", "--mode", "colbert"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in hits] == [h.id for h in tiny_index.search("Nelson Rockefeller", k=2)]
    assert _main(["index", "list"]) == 0
    assert "tiny\t50 passages" in capsys.readouterr().out


def test_errors_exit_2_with_the_reason(retrieval_home, tmp_path, capsys):
    assert _main(["index", "search", "missing-index", "q"]) == 2
    assert "no retrieval index 'missing-index'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "no text here"}\n')
    assert _main(["index", "build", str(bad), "--name", "bad"]) == 2
    assert "bad.jsonl:1: passage has no text" in capsys.readouterr().err
