"""`agentdistill distill --dry-run` and config errors through the command line."""

from pathlib import Path

from agentdistill.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_prints_the_plan(capsys):
    assert main(["distill", str(ROOT / "configs" / "quickstart.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for text in ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "32 questions from math_medium (train)",
                 "math500 (3), gsm-hard (3)", "agent-distill+sag", "student-cot", "n=3", "config OK",
                 "quickstart_teacher_store.jsonl"]:
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


def test_a_teacher_on_a_server_continues_the_partial_turn():
    # what `[teacher] model = "openai/..."  api_base = ...` builds, against our own server behaving as vLLM does
    import dspy

    from agentdistill.cli.config import ModelConfig
    from agentdistill.cli.distill import make_lm
    from agentdistill.lm import continuation_kwargs, local_lm
    from agentdistill.lm.server import ChatServer
    from agentdistill.programs import AgentAdapter
    from agentdistill.programs.rendering import tool_specs
    from agentdistill.signatures import AgentStep

    vllm = {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}
    engine = local_lm("smollm2-135m-instruct", backend="llama.cpp").engine
    with ChatServer(engine, "smol", prefill=False) as server:
        teacher = make_lm(ModelConfig(model="openai/smol", api_base=server.url, temperature=0.0, max_tokens=8))
        assert continuation_kwargs(teacher) == vllm
        inputs = {"task": {"question": "What is 2+3?"}, "tools": tool_specs([], {"answer": None}), "history": [],
                  "prefix": None}
        with dspy.context(lm=teacher, adapter=AgentAdapter()):  # one agent step's call
            pred = dspy.Predict(AgentStep)(**inputs)
        request = server.requests[-1]
        assert request["body"]["messages"][-1] == {"role": "assistant", "content": "Thought:"}
        assert request["continued"] is True and pred.raw == "Thought:" + request["texts"][0]
    llama = make_lm(ModelConfig(model="openai/smol", api_base="http://127.0.0.1:9/v1", server="llama.cpp"))
    assert continuation_kwargs(llama) == {} and llama.continuation_kwargs == {}  # llama-server prefills by itself


def test_server_key_is_checked(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[teacher]\nmodel = "openai/t"\napi_base = "http://127.0.0.1:8000/v1"\nserver = "tgi"\n'
                   '[student]\nmodel = "s"\n')
    assert main(["distill", str(cfg), "--dry-run"]) == 2
    assert "server must be one of 'vllm', 'sglang', 'agentdistill', 'llama.cpp'" in capsys.readouterr().out
    cfg.write_text('[teacher]\nmodel = "t"\nserver = "vllm"\n[student]\nmodel = "s"\n')
    assert main(["distill", str(cfg), "--dry-run"]) == 2
    assert "set api_base" in capsys.readouterr().out
