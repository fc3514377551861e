"""TransformersEngine through dspy.LM on the shipped SmolLM2-135M: determinism, batching, stops, continuation."""

import asyncio
import copy
import json
import pickle

import dspy
from dspy.lm15 import Config, Message, Request

from agentdistill.lm import sample
from agentdistill.lm.engine import TransformersEngine

from .conftest import QUESTION


def test_greedy_is_deterministic(smol_lm):
    first = smol_lm(messages=QUESTION, cache=False)
    second = smol_lm(messages=QUESTION, cache=False)
    assert first == second and first[0].strip()
    assert "5" in first[0]  # SmolLM2 answers "2 + 3 = 5"


def test_batched_samples_are_distinct_and_one_generate_call(smol_lm, monkeypatch):
    model = smol_lm.engine.load().model
    calls = []
    real = model.generate
    monkeypatch.setattr(model, "generate", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    texts = sample(smol_lm, [{"role": "user", "content": "Write a short poem about the sea."}],
                   n=4, temperature=0.7, max_tokens=10, seed=0)
    assert len(texts) == 4 and len(set(texts)) == 4
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == 4  # four rows in one call (prompt KV shared)


def test_stop_strings_cut_exactly(smol_lm):
    chat = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    [full] = smol_lm.engine.generate(chat, max_tokens=30)
    [cut] = smol_lm.engine.generate(chat, max_tokens=30, stop=["4"])
    assert "4" in full.text and "4" not in cut.text
    assert full.text.startswith(cut.text) and full.text[len(cut.text):].startswith("4")
    assert cut.finish_reason == "stop" and cut.completion_tokens < full.completion_tokens
    # Through dspy.LM, stop from the call's config
    assert smol_lm(messages=chat, stop=["4"], max_tokens=30, cache=False) == [cut.text]


def test_continuation_of_partial_assistant_message(smol_lm):
    engine = smol_lm.engine
    [whole] = engine.generate(QUESTION, max_tokens=12)
    tok = engine.tokenizer
    ids = tok(whole.text, add_special_tokens=False)["input_ids"]
    prefix = tok.decode(ids[:2])  # the model's own first tokens, as a partial assistant turn
    [rest] = engine.generate([*QUESTION, {"role": "assistant", "content": prefix}], max_tokens=12)
    # Greedy continuation of its own prefix reproduces the rest of its answer, and only the rest.
    assert prefix and prefix + rest.text == whole.text
    # Same through plain dspy lm(messages=...)
    assert smol_lm(messages=[*QUESTION, {"role": "assistant", "content": prefix}], cache=False) == [rest.text]


def test_usage_and_finish_reason_reported(smol_lm):
    request = Request(model=smol_lm.model, messages=(Message.user("Tell me a long story."),),
                      config=Config(max_tokens=5, temperature=0.0))
    response = smol_lm.engine.complete(request)
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 5 and response.usage.input_tokens > 10
    assert response.usage.total_tokens == response.usage.input_tokens + 5


def test_dspy_predict_runs_on_engine(smol_lm):
    # A 135M model follows DSPy's ChatAdapter format once it has seen it in a few demos.
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question=f"What is the capital of {country}?", answer=city)
                     for country, city in [("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid")]]
    lm = smol_lm.copy(max_tokens=12, stop=["\n\n[["])
    with dspy.context(lm=lm):
        pred = predict(question="What is the capital of France?")
    assert pred.answer == "Paris"
    assert lm.history[-1]["model"] == smol_lm.model and lm.history[-1]["usage"]["completion_tokens"] <= 12


def test_async_call(smol_lm):
    out = asyncio.run(smol_lm.acall(messages=QUESTION, cache=False))
    assert out == smol_lm(messages=QUESTION, cache=False)


def test_pickle_and_deepcopy_carry_no_weights(smol_lm):
    model = smol_lm.engine.load().model
    blob = pickle.dumps(smol_lm)
    assert len(blob) < 100_000  # the weights are 538 MB
    clone = pickle.loads(blob)
    assert clone.engine is not smol_lm.engine and clone.engine.load().model is model  # shared, not copied
    program = dspy.Predict("question -> answer")
    program.set_lm(smol_lm)
    copied = program.deepcopy()
    assert copied.lm.engine is not smol_lm.engine and copied.lm.engine.load().model is model
    assert copy.deepcopy(smol_lm.engine).spec() == smol_lm.engine.spec()
    assert clone(messages=QUESTION, cache=False) == smol_lm(messages=QUESTION, cache=False)


def test_saved_state_round_trips(smol_lm):
    state = json.loads(json.dumps(smol_lm.dump_state()))
    assert state["engine"]["class"] == "agentdistill.lm.engine:TransformersEngine"
    loaded = dspy.LM.load_state(state, allow_custom_lm_class=True)
    assert loaded.model == smol_lm.model and isinstance(loaded.engine, TransformersEngine)
    assert loaded(messages=QUESTION, cache=False) == smol_lm(messages=QUESTION, cache=False)


def test_the_async_engine_round_trips_through_dspy_without_loading_weights(tmp_path):
    from agentdistill.lm.engine import AsyncEngine

    engine = TransformersEngine(tmp_path / "model", max_tokens=7, threads=2)  # lazy: the folder is never read
    lm = dspy.LM("local/model", engine=engine, async_engine=AsyncEngine(engine))
    state = json.loads(json.dumps(lm.dump_state()))
    assert state["async_engine"]["state"]["class"] == "agentdistill.lm.engine:TransformersEngine"
    assert state["async_engine"]["class"] == "agentdistill.lm.engine:AsyncEngine"
    loaded = dspy.LM.load_state(state, allow_custom_lm_class=True)  # AsyncEngine.load_state imports the sync class
    assert isinstance(loaded.engine, TransformersEngine) and loaded.engine.spec() == engine.spec()
    assert loaded.dump_state()["async_engine"] == state["async_engine"]


def test_bad_n_is_a_clear_error(smol_lm):
    import pytest

    with pytest.raises(ValueError, match="n must be a positive integer"):
        smol_lm.engine.generate(QUESTION, n=0)


def test_threads_share_one_model_and_never_generate_concurrently(smol_lm, monkeypatch):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    model = smol_lm.engine.load().model
    real, active, peak = model.generate, [0], [0]
    guard = threading.Lock()

    def watched(*args, **kwargs):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)  # widen the window in which an unlocked second call would overlap
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(model, "generate", watched)
    with ThreadPoolExecutor(3) as pool:  # as dspy.Evaluate(num_threads=3) would call it
        outs = list(pool.map(lambda _: smol_lm(messages=QUESTION, cache=False)[0], range(3)))
    assert peak[0] == 1 and len(set(outs)) == 1


def test_shared_prompt_cache_rows_match_plain_decoding(smol_lm):
    chat = [{"role": "user", "content": "Name three colours."}]
    [greedy] = smol_lm.engine.generate(chat, max_tokens=8)
    # Near-zero temperature: every row of the batched, prompt-cache-sharing path must decode like plain greedy.
    rows = smol_lm.engine.generate(chat, n=2, temperature=0.01, max_tokens=8, seed=0)
    assert [r.text for r in rows] == [greedy.text, greedy.text]
    cut = smol_lm.engine.generate(chat, n=3, temperature=0.9, max_tokens=12, stop=[","], seed=0)
    assert all("," not in r.text for r in cut) and len(cut) == 3


def test_retrained_weights_in_the_same_folder_are_served(tmp_path):
    # training again into a folder replaces its weights: a new engine on that path must load them, not the old ones
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from agentdistill.lm import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    folder = tmp_path / "model"

    def write(seed):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return model.lm_head.weight.detach().clone()

    a = write(0)
    first = TransformersEngine(folder)
    first.generate(QUESTION, max_tokens=2)
    assert torch.equal(first.load().model.lm_head.weight, a)
    b = write(1)
    assert not torch.equal(a, b)
    assert torch.equal(TransformersEngine(folder).load().model.lm_head.weight, b)
    assert torch.equal(TransformersEngine(folder, dtype="bfloat16").load().model.lm_head.weight, b.bfloat16())
