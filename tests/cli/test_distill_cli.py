"""`agentdistill distill --dry-run` and config errors through the command line."""

from pathlib import Path

from agentdistill.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_prints_the_plan(capsys):
    assert main(["distill", str(ROOT / "configs" / "quickstart.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for text in ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "32 questions from math_medium (train)",
                 "math500 (3), gsm-hard (3)", "agent-distill+sag", "student-cot", "n=3", "config OK"]:
        assert text in out, text


def test_dry_run_with_variant_subset(capsys):
    assert main(["distill", str(ROOT / "configs" / "smoke.toml"), "--dry-run", "--variants", "student-agent"]) == 0
    out = capsys.readouterr().out
    assert "student-agent+sag" in out and "agent-distill" not in out and "(not needed)" in out


def test_bad_config_exits_2_with_the_fix(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[teacher]\nmodel = "t"\n[student]\nmodel = "s"\n[sft]\nepoch = 2\n')
    assert main(["distill", str(cfg), "--dry-run"]) == 2
    assert "did you mean 'epochs'?" in capsys.readouterr().out
