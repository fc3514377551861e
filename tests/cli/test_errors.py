"""Error messages as the user reads them: printed by the command line's console, markup and all, one message per
user-caused failure (the traceback only with --debug)."""

import json

import pytest

from agentdistill.cli.main import main
from tests.cli.test_config import CONFIG_ERRORS


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(value)  # strings (JSON escapes are TOML's), ints, floats


def write_toml(path, data: dict):
    path.write_text("".join(f"[{table}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
                            for table, values in data.items()))
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("data,message", CONFIG_ERRORS)
def test_config_errors_print_exactly_as_written(tmp_path, capsys, data, message):
    # rich reads "[sft]" as a markup tag and drops it: "unknown key 'epoch' in ; did you mean..."
    cfg = write_toml(tmp_path / "c.toml", data)
    assert main(["distill", str(cfg), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert flat(message) in flat(captured.out + captured.err)
    assert "Traceback" not in captured.out + captured.err


def test_a_message_with_markup_like_text_keeps_it(capsys):
    from rich.console import Console

    from agentdistill.cli.errors import print_error

    console = Console(record=True, width=60)
    print_error(console, "[eval] limit must be >= 0 in [bold]x.toml[/bold]; see [link]", label="config error")
    text = console.export_text()
    assert flat(text) == "config error: [eval] limit must be >= 0 in [bold]x.toml[/bold]; see [link]"


def test_version(capsys):
    import agentdistill

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"agentdistill {agentdistill.__version__}"


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    broken = tmp_path / "train.json"
    broken.write_text('{"examples": [')
    cfg = write_toml(tmp_path / "c.toml", {
        "run": {"output_dir": str(tmp_path / "out")},
        "teacher": {"model": "qwen2.5-coder-0.5b-instruct"}, "student": {"model": "smollm2-135m-instruct"},
        "trainset": {"file": str(broken)}, "distill": {"variants": ["agent-distill"]},
        "eval": {"benchmarks": ["gsm-hard"], "limit": 1}, "sag": {"enabled": False}})
    assert main(["distill", str(cfg)]) == 2
    quiet = capsys.readouterr()
    assert "not valid JSON (line 1" in quiet.out and "Traceback" not in quiet.out + quiet.err
    assert "--debug" in quiet.out  # where the traceback is
    assert main(["distill", str(cfg), "--debug"]) == 2
    loud = capsys.readouterr()
    assert "not valid JSON (line 1" in loud.out and "Traceback" in loud.out + loud.err
    # the check found the problem from an exception: --debug shows where that one was raised, in the loader
    assert "found from BenchmarkFormatError" in loud.out and "loaders.py" in loud.out
