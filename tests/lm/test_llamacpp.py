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
