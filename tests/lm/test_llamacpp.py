"""LlamaCppEngine on the shipped SmolLM2 GGUF: same contract as the transformers engine."""

import pickle

import dspy
import pytest

from agentdistill.lm import sample

from .conftest import QUESTION


def test_model_string_names_backend_and_checkpoint(smol_cpp_lm, smol_lm):
    assert smol_cpp_lm.model.startswith("local/smollm2-135m-instruct@") and smol_cpp_lm.model.endswith("-llamacpp")
    assert smol_cpp_lm.model != smol_lm.model  # different numerics -> different DSPy cache entries


def test_greedy_deterministic_and_answers(smol_cpp_lm):
    first = smol_cpp_lm(messages=QUESTION, cache=False)
    assert first == smol_cpp_lm(messages=QUESTION, cache=False) and "5" in first[0]


def test_n_samples_distinct(smol_cpp_lm):
    texts = sample(smol_cpp_lm, [{"role": "user", "content": "Write a short poem about the sea."}],
                   n=4, temperature=0.7, max_tokens=10, seed=1)
    assert len(texts) == 4 and len(set(texts)) == 4


def test_stop_and_continuation(smol_cpp_lm):
    engine = smol_cpp_lm.engine
    chat = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    [full] = engine.generate(chat, max_tokens=30)
    [cut] = engine.generate(chat, max_tokens=30, stop=["4"])
    assert full.text.startswith(cut.text) and full.text[len(cut.text):].startswith("4")
    assert cut.finish_reason == "stop"
    prefix = full.text[:3]
    [rest] = engine.generate([*chat, {"role": "assistant", "content": prefix}], max_tokens=30)
    assert (prefix + rest.text).startswith(full.text[:12])  # continues its own answer, prefix not repeated


def test_pickles_without_the_model(smol_cpp_lm):
    blob = pickle.dumps(smol_cpp_lm)
    assert len(blob) < 100_000
    assert pickle.loads(blob)(messages=QUESTION, cache=False) == smol_cpp_lm(messages=QUESTION, cache=False)


def test_predict_on_llamacpp_engine(smol_cpp_lm):
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question=f"What is the capital of {country}?", answer=city)
                     for country, city in [("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid")]]
    with dspy.context(lm=smol_cpp_lm.copy(max_tokens=12, stop=["\n\n[["])):
        assert predict(question="What is the capital of France?").answer == "Paris"


@pytest.mark.slow  # loads the 491 MB teacher GGUF: ~10-25 s on the shared machine
def test_shipped_teacher_runs_dspy_predict_zero_shot():
    from agentdistill.lm import local_lm

    teacher = local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp", max_tokens=24)
    assert teacher.model.startswith("local/qwen2.5-coder-0.5b-instruct@")
    with dspy.context(lm=teacher):
        assert dspy.Predict("question -> answer")(question="What is the capital of France?").answer == "Paris"


# --- the shared decode loop: batched candidates, concurrent requests, cached prefixes -----------------------------

STORY = [{"role": "system", "content": "You solve tasks by writing Python code in steps. " * 8},
         {"role": "user", "content": "Write a short story about a lighthouse keeper."}]


def _engine(**kwargs):
    from agentdistill.lm import LlamaCppEngine
    from agentdistill.lm.models import gguf_path, tokenizer_dir

    from .conftest import SMOL

    return LlamaCppEngine(gguf_path(SMOL), tokenizer_dir(SMOL), **kwargs)


def test_greedy_equals_llama_cpp_itself_on_the_same_file():
    """The engine's own decode loop against llama-cpp-python's Llama on the same GGUF (the limit it is timed
    against): the same tokens. A fresh engine: with a cached prefix, the prompt's rest is evaluated as a shorter
    chunk, and a chunk's size can change the kernels' summation order (see the next-step test)."""
    from llama_cpp import Llama

    from agentdistill.lm.chat import render_prompt

    engine = _engine(n_ctx=2048 + 1)  # its own decoder (the key includes n_ctx)
    prompt = render_prompt(engine.tokenizer, STORY, None)
    raw = Llama(model_path=engine.gguf, n_ctx=2048, n_threads=1, flash_attn=True, verbose=False)
    tokens = raw.tokenize(prompt.encode(), add_bos=False, special=True)
    expected = raw.create_completion(prompt=tokens, max_tokens=40, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                     repeat_penalty=1.0)["choices"][0]["text"]
    [got] = engine.generate(STORY, max_tokens=40)
    assert got.text == expected and got.completion_tokens == 40


def test_batched_candidates_equal_sequential_calls_under_a_seed():
    """SAG's n candidates in one call decode side by side in one batch; each is the sample a single call with its
    seed (seed + i) draws: the same texts, so the same votes. A fresh engine, and the prompt cached first, so that
    every call evaluates the same last chunk of it over the same cells: the chunking and the order of a sequence's
    cells in the cache set the kernels' summation order (see the next-step test)."""
    engine = _engine(n_ctx=2048 + 3)
    decoder = engine.load().decoder
    engine.generate(STORY, max_tokens=1)
    batched = engine.generate(STORY, n=4, temperature=0.8, max_tokens=24, seed=11)
    assert decoder.max_batch >= 4
    sequential = [engine.generate(STORY, n=1, temperature=0.8, max_tokens=24, seed=11 + i)[0] for i in range(4)]
    assert [c.text for c in batched] == [c.text for c in sequential]
    assert len({c.text for c in batched}) > 1  # real samples, not one text four times


def test_candidates_share_the_prompt_evaluation(smol_cpp_lm):
    engine = smol_cpp_lm.engine
    decoder = engine.load().decoder
    chat = [{"role": "user", "content": "Name a colour that starts with the letter q or z, and explain why."}]
    before = decoder.prompt_tokens_evaluated
    completions = engine.generate(chat, n=6, temperature=0.9, max_tokens=8, seed=3)
    prompt = completions[0].prompt_tokens
    assert len(completions) == 6 and decoder.prompt_tokens_evaluated - before <= prompt  # once, not six times


def test_a_next_step_evaluates_only_its_new_tokens():
    """An agent's next prompt starts with the previous prompt and answer: the cached cells serve that prefix, so
    only the new tokens are evaluated. The result depends on the prompt and on how it was split into chunks (as
    with any prefix cache, vLLM's included: a chunk's size can change the kernels' summation order), so the same
    history gives the same output."""
    outputs = []
    for n_ctx in (4096, 4097):  # two engines with their own decoders and cells
        engine = _engine(n_ctx=n_ctx)
        decoder = engine.load().decoder
        [first] = engine.generate(STORY, max_tokens=12)
        follow_up = [*STORY, {"role": "assistant", "content": first.text}, {"role": "user", "content": "Shorter."}]
        before = decoder.prompt_tokens_evaluated
        [second] = engine.generate(follow_up, max_tokens=12)
        assert decoder.prompt_tokens_evaluated - before < second.prompt_tokens // 2
        outputs.append((first.text, second.text))
    assert outputs[0] == outputs[1]


def test_concurrent_requests_decode_in_one_batch_with_their_own_results():
    import threading

    engine = _engine(n_ctx=2048 + 4)
    chats = [[{"role": "user", "content": f"What is {a} plus {a}? Answer in one sentence."}] for a in range(2, 6)]
    alone = [engine.generate(chat, max_tokens=16)[0].text for chat in chats]
    decoder = engine.load().decoder
    decoder.max_batch = 0
    results: dict[int, str] = {}
    barrier = threading.Barrier(len(chats))

    def run(i):
        barrier.wait()
        results[i] = engine.generate(chats[i], max_tokens=16)[0].text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(chats))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results[i] for i in range(len(chats))] == alone
    assert decoder.max_batch >= 2  # they ran side by side, not one after the other


def test_more_candidates_than_slots_run_in_rounds():
    engine = _engine(parallel=2, n_ctx=1024)
    completions = engine.generate([{"role": "user", "content": "Say a word."}], n=5, temperature=0.9,
                                  max_tokens=4, seed=0)
    assert len(completions) == 5 and all(c.completion_tokens >= 1 for c in completions)


def test_a_full_cache_evicts_old_prefixes_and_a_bad_request_does_not_stop_the_loop():
    engine = _engine(parallel=2, n_ctx=512, kv_tokens=512)
    for word in ("apple", "river", "stone", "cloud"):  # each prompt's cells stay cached until space is needed
        [c] = engine.generate([{"role": "user", "content": f"Write a long poem about the word {word}. " * 12}],
                              max_tokens=8)
        assert c.completion_tokens == 8
    with pytest.raises(ValueError, match="does not fit n_ctx=512"):
        engine.generate([{"role": "user", "content": "word " * 600}], max_tokens=4)
    assert engine.generate([{"role": "user", "content": "Hi"}], max_tokens=3)[0].completion_tokens >= 1


def test_interleaved_agents_keep_their_own_cached_histories():
    """Agent B's step shares the system prompt with agent A's cached history: it gets those cells in a slot of its
    own, and A's next step still finds its whole history cached (the cut used to cost A a re-evaluation)."""
    engine = _engine(parallel=4, n_ctx=4096 + 2)
    decoder = engine.load().decoder
    system = {"role": "system", "content": "You are a careful assistant. " * 4}
    a = [system, {"role": "user", "content": "Describe the water cycle in detail. " * 12}]
    b = [system, {"role": "user", "content": "Name three rivers in Europe."}]
    [a1] = engine.generate(a, max_tokens=8)
    engine.generate(b, max_tokens=8)
    a2 = [*a, {"role": "assistant", "content": a1.text}, {"role": "user", "content": "Shorter."}]
    before = decoder.prompt_tokens_evaluated
    [out] = engine.generate(a2, max_tokens=4)
    assert decoder.prompt_tokens_evaluated - before < 30 < out.prompt_tokens
