"""server_lm: a teacher behind an OpenAI-compatible server continues the agent's partial assistant turn.

The server is our own (agentdistill.lm.server) over the shipped SmolLM2, started with prefill=False so that it
behaves as vLLM does: a trailing assistant message is a finished turn unless the request says
continue_final_message. Its request log says, per request, whether it continued the partial turn or restarted.
"""

import copy
import pickle

import dspy
import pytest

from agentdistill.lm import continuation_kwargs, server_lm, set_continuation
from agentdistill.lm.server import ChatServer
from agentdistill.programs import CodeAgent, SelfConsistency
from agentdistill.programs.rendering import STEP_STOP, render_prefix

VLLM = {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}
PREFIX = "I add the two numbers."
QUESTION = "What is 2 + 3?"


@pytest.fixture(scope="module")
def vllm_like(smol_cpp_lm):
    with ChatServer(smol_cpp_lm.engine, "smol", prefill=False) as srv:  # loopback, a free port
        yield srv


@pytest.fixture
def agent():
    agent = CodeAgent("question -> answer", max_steps=1, max_tokens=24)
    yield agent
    agent.close()


def test_server_lm_carries_each_servers_continuation_settings():
    url = "http://127.0.0.1:9/v1"  # never called here
    lm = server_lm("Qwen/Qwen2.5-32B-Instruct", url, temperature=0.0)
    assert lm.model == "openai/Qwen/Qwen2.5-32B-Instruct" and lm.kwargs["api_base"] == url
    assert continuation_kwargs(lm) == VLLM and continuation_kwargs(server_lm("m", url, server="sglang")) == VLLM
    assert continuation_kwargs(server_lm("hosted_vllm/m", url, server="agentdistill")) == VLLM
    llama = server_lm("openai/m", url, server="llama.cpp")  # llama-server prefills a trailing assistant message
    assert llama.model == "openai/m" and continuation_kwargs(llama) == {}
    # the settings travel with the LM object: copy (dspy), deepcopy (optimizers), pickle (save_program)
    for clone in (lm.copy(temperature=0.7), copy.deepcopy(lm), pickle.loads(pickle.dumps(lm))):
        assert continuation_kwargs(clone) == VLLM
    continuation_kwargs(lm)["extra_body"]["continue_final_message"] = False  # a copy: the LM's stays intact
    assert continuation_kwargs(lm) == VLLM
    assert continuation_kwargs(set_continuation(dspy.LM("openai/m", api_base=url), "vllm")) == VLLM
    with pytest.raises(ValueError, match="server must be one of"):
        server_lm("m", url, server="tgi")
    with pytest.raises(ValueError, match="api_base"):
        server_lm("m", "gpu:8000")
    with pytest.raises(ValueError, match="native"):
        server_lm("m", url, engine="lm15")


def test_agent_step_continues_the_first_thought_prefix(vllm_like, agent, smol_cpp_lm):
    agent.set_lm(server_lm("smol", vllm_like.url, temperature=0.0, max_tokens=24, cache=False))
    vllm_like.requests.clear()
    pred = agent(question=QUESTION, first_thought_prefix=PREFIX)
    first = vllm_like.requests[0]
    seed = render_prefix(PREFIX)
    assert first["body"]["messages"][-1] == {"role": "assistant", "content": seed}
    assert first["body"]["continue_final_message"] is True and first["body"]["add_generation_prompt"] is False
    assert first["continued"] is True  # the server continued the partial turn
    [reply] = first["texts"]
    # the reply is the engine's own continuation of that prompt, and the step is prefix + continuation
    direct = smol_cpp_lm.engine.generate(first["body"]["messages"], n=1, temperature=0.0, max_tokens=24,
                                         stop=STEP_STOP, continue_final_message=True)[0].text
    assert reply == direct
    assert pred.trajectory.steps[0].raw == seed + reply


def test_plain_dspy_lm_restarts_the_turn(vllm_like, agent):
    # what the CLI built before: the partial turn goes out as a finished turn and the server starts a new one
    agent.set_lm(dspy.LM("openai/smol", api_base=vllm_like.url, api_key="local", temperature=0.0, max_tokens=24,
                         cache=False))
    vllm_like.requests.clear()
    agent(question=QUESTION, first_thought_prefix=PREFIX)
    assert vllm_like.requests[0]["continued"] is False
    assert "continue_final_message" not in vllm_like.requests[0]["body"]


def _sag_requests(server, n):
    seeded = [r for r in server.requests if r["body"]["messages"][-1]["role"] == "assistant"]
    assert len(seeded) >= n
    return seeded[:n]


def test_sag_step_continues_the_partial_turn(vllm_like, agent):
    agent.set_lm(server_lm("smol", vllm_like.url, max_tokens=24, cache=False))
    robust = SelfConsistency(agent, n=2, temperature=0.7, max_tokens=24)
    vllm_like.requests.clear()
    pred = robust(question=QUESTION, first_thought_prefix=PREFIX)
    requests = _sag_requests(vllm_like, 2)
    seed = render_prefix(PREFIX)
    for r in requests:
        assert r["body"]["messages"][-1] == {"role": "assistant", "content": seed}
        assert r["body"]["continue_final_message"] is True and r["continued"] is True
        assert r["body"]["temperature"] == 0.7
    step = pred.trajectory.steps[0]
    assert len(step.candidates) == 2
    assert step.raw in {seed + r["texts"][0] for r in requests}  # the winner is a continuation of the seed


def test_sag_keeps_the_agents_own_continuation_settings(vllm_like):
    # a plain dspy.LM, with the settings given to the agent: SelfConsistency must send them too
    agent = CodeAgent("question -> answer", max_steps=1, max_tokens=24, continuation_kwargs=VLLM)
    agent.set_lm(dspy.LM("openai/smol", api_base=vllm_like.url, api_key="local", max_tokens=24, cache=False,
                         engine="litellm"))
    try:
        vllm_like.requests.clear()
        SelfConsistency(agent, n=2, temperature=0.7, max_tokens=24)(question=QUESTION)
    finally:
        agent.close()
    for r in _sag_requests(vllm_like, 2):
        assert r["body"]["messages"][-1] == {"role": "assistant", "content": render_prefix(None)}
        assert r["continued"] is True


class _ScriptedServerEngine:
    """The scripted distillation teacher (tests/optimizers/fake_teacher.py) as the model behind the server: it
    continues the partial turn only when the server says so, and starts a new "Thought: ..." turn otherwise."""

    def generate(self, messages, *, n=1, continue_final_message=None, **_):
        from agentdistill.lm.chat import Completion
        from tests.optimizers.fake_teacher import teacher_reply

        restarted = not continue_final_message and messages[-1]["role"] == "assistant"
        text = teacher_reply(messages[:-1] if restarted else messages)
        return [Completion(text, "stop", 10, len(text.split()))] * n


@pytest.mark.slow  # one real SFT step of SmolLM2 and the compiled student answering (~2 min on 2 shared cores)
def test_compile_with_the_teacher_behind_a_server(tmp_path):
    from agentdistill.lm import local_lm, resolve_model_path
    from agentdistill.optimizers import SFT, AgentDistill
    from tests.optimizers.fake_teacher import PREFIX as TEACHER_PREFIX
    from tests.optimizers.fake_teacher import metric, tasks

    with ChatServer(_ScriptedServerEngine(), "teacher", prefill=False) as srv:
        teacher = CodeAgent("question -> answer", max_steps=3)
        teacher.set_lm(server_lm("teacher", srv.url, temperature=0.0, cache=False))
        student = CodeAgent("question -> answer", max_steps=2, max_tokens=16)
        student.set_lm(local_lm(str(resolve_model_path("smollm2-135m-instruct"))))
        distill = AgentDistill(metric=metric, store=tmp_path / "store.jsonl", num_threads=2, track=False,
                               sft=SFT(output_dir=str(tmp_path / "out"), max_steps=1, lora_r=8, lora_alpha=16,
                                       per_device_batch_size=2, max_length=768, report_to="none"))
        try:
            compiled = distill.compile(student, trainset=tasks([10, 20]), teacher=teacher)
            pred = compiled(question="What is 3 + 4?")
        finally:
            teacher.close()
            student.close()
    seeded = [r for r in srv.requests if r["body"]["messages"][-1]["role"] == "assistant"]
    assert seeded and all(r["continued"] for r in seeded)  # every partial turn was continued, none restarted
    first_steps = [r for r in seeded if r["body"]["messages"][-1]["content"].startswith("Thought: " + TEACHER_PREFIX)]
    assert len(first_steps) == 2  # each task's first step carried its first-thought prefix to the server
    assert distill.last_report.kept == 2 and pred.trajectory.steps
