"""`agentdistill models list|install` (serve is the server of test_server.py behind argparse)."""

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
