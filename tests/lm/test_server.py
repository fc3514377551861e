"""The OpenAI-compatible server, driven by a plain dspy.LM("openai/...") as a vLLM-served teacher would be; several
models by name."""

import json
import urllib.request

import dspy
import pytest

from agentdistill.lm import sample
from agentdistill.lm.server import ChatServer

from .conftest import QUESTION


@pytest.fixture(scope="module")
def server(smol_cpp_lm):
    with ChatServer(smol_cpp_lm.engine, "smol") as srv:  # loopback, a free port
        yield srv


@pytest.fixture
def client(server):
    return dspy.LM("openai/smol", api_base=server.url, api_key="local", temperature=0.0, max_tokens=16, cache=False)


def test_dspy_openai_client_matches_engine(client, server, smol_cpp_lm):
    assert client(messages=QUESTION) == smol_cpp_lm(messages=QUESTION, cache=False)
    assert server.last_request["messages"][-1] == QUESTION[-1]


def test_trailing_assistant_is_continued_and_vllm_switches_honoured(client, server, smol_cpp_lm):
    partial = [*QUESTION, {"role": "assistant", "content": "The answer is"}]
    expected = smol_cpp_lm(messages=partial, cache=False)
    assert client(messages=partial) == expected  # default: prefill, as llama.cpp's server does
    vllm_style = client(messages=partial, extra_body={"continue_final_message": True, "add_generation_prompt": False})
    assert vllm_style == expected and server.last_request["continue_final_message"] is True
    new_turn = client(messages=partial, extra_body={"add_generation_prompt": True})  # a finished turn + a new one
    assert server.last_request["add_generation_prompt"] is True and new_turn != expected


def test_sample_falls_back_to_n_calls(client, server):
    texts = sample(client, [{"role": "user", "content": "Write a short poem about the sea."}],
                   n=3, temperature=0.8, max_tokens=8, stop=["\n"])
    assert len(texts) == 3 and len(set(texts)) > 1 and all("\n" not in t for t in texts)
    assert server.last_request["stop"] == ["\n"] and server.last_request["temperature"] == 0.8
    partial = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "The answer is"}]
    vllm_style = {"continue_final_message": True, "add_generation_prompt": False}
    [text] = sample(client, partial, n=1, temperature=0.0, extra_body=vllm_style)
    assert server.last_request["continue_final_message"] is True and not text.startswith("The answer is")


def _post(url, body):
    request = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_raw_protocol_n_usage_and_errors(server):
    status, body = _post(server.url, {"model": "smol", "messages": QUESTION, "n": 2, "temperature": 0.9,
                                      "max_tokens": 6})
    assert status == 200 and [c["index"] for c in body["choices"]] == [0, 1]
    assert 2 <= body["usage"]["completion_tokens"] <= 12  # both choices' tokens, 6 at most each
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    status, body = _post(server.url, {"messages": QUESTION, "stream": True})
    assert status == 400 and "stream" in body["error"]["message"]
    status, body = _post(server.url, {"messages": []})
    assert status == 400 and "messages" in body["error"]["message"]
    with urllib.request.urlopen(server.url + "/models", timeout=10) as response:
        assert json.loads(response.read())["data"][0]["id"] == "smol"


class _Recorder(dspy.utils.callback.BaseCallback):
    def __init__(self):
        self.starts, self.ends = [], []

    def on_lm_start(self, call_id, instance, inputs):
        self.starts.append(inputs)

    def on_lm_end(self, call_id, outputs, exception=None):
        self.ends.append(outputs)


def test_sample_threads_carry_the_dspy_context(client, server):
    # the n concurrent calls run in worker threads: usage tracking and dspy.context callbacks must reach them
    from dspy.utils.usage_tracker import track_usage

    recorder = _Recorder()
    with track_usage() as tracker, dspy.context(callbacks=[recorder]):
        texts = sample(client, [{"role": "user", "content": "Name a color."}], n=3, temperature=0.9, max_tokens=5)
    assert len(texts) == 3 and len(recorder.starts) == 3 and len(recorder.ends) == 3
    usage = tracker.get_total_tokens()[client.model]
    assert usage["completion_tokens"] >= 3 and usage["prompt_tokens"] > 0  # each call's usage, none lost


def test_prefill_off_behaves_like_vllm(smol_cpp_lm):
    partial = [*QUESTION, {"role": "assistant", "content": "The answer is"}]
    with ChatServer(smol_cpp_lm.engine, "smol", prefill=False) as vllm_like:
        lm = dspy.LM("openai/smol", api_base=vllm_like.url, api_key="local", temperature=0.0, max_tokens=8,
                     cache=False)
        finished_turn = lm(messages=partial)  # no switch: the partial turn is taken as finished, a new one starts
        assert vllm_like.requests[-1]["continued"] is False
        continued = lm(messages=partial, extra_body={"continue_final_message": True, "add_generation_prompt": False})
        assert vllm_like.requests[-1]["continued"] is True and continued == smol_cpp_lm(messages=partial, cache=False)
        assert finished_turn != continued and vllm_like.requests[-1]["texts"] == continued


# --- several models by name, in process -------------------------------------------------------------------------

def test_models_are_routed_by_name(smol_cpp_lm):
    engine = smol_cpp_lm.engine
    with ChatServer({"base": engine, "student": engine}) as srv:
        status, body = _post(srv.url, {"model": "openai/student", "messages": QUESTION, "max_tokens": 4})
        assert status == 200 and body["model"] == "student" and srv.requests[-1]["model"] == "student"
        status, body = _post(srv.url, {"messages": QUESTION, "max_tokens": 4})  # no model: the first one
        assert status == 200 and body["model"] == "base"
        status, body = _post(srv.url, {"model": "gpt-5", "messages": QUESTION})
        assert status == 404 and body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"
        assert "'gpt-5'" in body["error"]["message"] and "'base', 'student'" in body["error"]["message"]
        with urllib.request.urlopen(srv.url + "/models", timeout=10) as response:
            assert [m["id"] for m in json.loads(response.read())["data"]] == ["base", "student"]
    with pytest.raises(TypeError, match="model_name"):
        ChatServer(engine)


# --- the server process: the client path of a vLLM user, on a laptop ---------------------------------------------
