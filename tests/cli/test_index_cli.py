"""`agentdistill index list` on a machine with no index yet says so and how to build one."""

from agentdistill.cli.main import main


def test_index_list_when_there_is_none(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    assert main(["index", "list"]) == 0
    out = capsys.readouterr().out
    assert f"no retrieval indexes in {tmp_path / 'indexes'}" in out and "agentdistill index build" in out
