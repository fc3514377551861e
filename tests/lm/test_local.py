"""local_lm on any checkpoint folder: the DSPy model string follows the checkpoint's content."""

import shutil

import pytest

from agentdistill.lm import fingerprint, local_lm

from .conftest import QUESTION


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, smol_lm):
    """A 1-layer random llama with SmolLM2's tokenizer: a stand-in for a fine-tuned checkpoint folder."""
    from tests.lm.tiny_llama import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("ckpt") / "tiny-sft", smol_lm.engine.tokenizer)


def test_model_string_encodes_checkpoint(tiny_checkpoint, tmp_path):
    import torch
    from transformers import LlamaForCausalLM

    lm = local_lm(tiny_checkpoint, max_tokens=4)
    assert lm.model == f"local/tiny-sft@{fingerprint(tiny_checkpoint)}"
    assert len(lm(messages=QUESTION, cache=False)) == 1  # any HF folder runs on the engine

    same = tmp_path / "tiny-sft"
    shutil.copytree(tiny_checkpoint, same)
    assert local_lm(same).model == lm.model  # same content, same DSPy cache identity

    # "Train" it: new weights in the same folder -> a new model string, so no stale cache entry is reused.
    model = LlamaForCausalLM.from_pretrained(same)
    with torch.no_grad():
        model.lm_head.weight.add_(0.01)
    model.save_pretrained(same)
    assert local_lm(same).model != lm.model


def test_shipped_names_have_stable_strings(smol_lm):
    assert smol_lm.model == local_lm("smollm2-135m-instruct").model
    assert smol_lm.model.startswith("local/smollm2-135m-instruct@")


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        local_lm("smollm2-135m-instruct", backend="vllm")
    with pytest.raises(ValueError, match="takes a shipped model"):
        local_lm("no-such-model", backend="llama.cpp")
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder nor a PEFT adapter folder"):
        local_lm(tmp_path, backend="llama.cpp")  # an empty folder: nothing to export
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        local_lm(tmp_path)


def test_peft_adapter_folder_runs(tiny_checkpoint, tmp_path, smol_lm):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapter = tmp_path / "lora"
    peft_model.save_pretrained(adapter)  # adapter_config.json names the base folder
    smol_lm.engine.tokenizer.save_pretrained(adapter)
    lm = local_lm(adapter, max_tokens=3)
    assert lm.model == f"local/lora@{fingerprint(adapter)}"
    assert len(lm(messages=QUESTION, cache=False)) == 1


def test_local_sample_is_one_recorded_lm_call(smol_cpp_lm):
    # SAG on the local engine: its batched generate shows up as one LM call in lm.history, callbacks and usage
    import dspy
    from dspy.utils.callback import BaseCallback
    from dspy.utils.usage_tracker import track_usage

    from agentdistill.lm import sample

    class Recorder(BaseCallback):
        calls = []

        def on_lm_start(self, call_id, instance, inputs):
            self.calls.append(("start", call_id, instance, inputs))

        def on_lm_end(self, call_id, outputs, exception=None):
            self.calls.append(("end", call_id, outputs, exception))

    recorder, before = Recorder(), len(smol_cpp_lm.history)
    with track_usage() as tracker, dspy.context(callbacks=[recorder]):
        texts = sample(smol_cpp_lm, QUESTION, n=2, temperature=0.8, max_tokens=4, seed=1)
    assert len(smol_cpp_lm.history) == before + 1
    entry = smol_cpp_lm.history[-1]
    assert entry["messages"] == QUESTION and entry["outputs"] == texts and entry["model"] == smol_cpp_lm.model
    assert entry["kwargs"]["n"] == 2 and entry["kwargs"]["temperature"] == 0.8 and len(entry["response"]) == 2
    assert entry["usage"]["completion_tokens"] == sum(r.usage.output_tokens for r in entry["response"])
    assert tracker.get_total_tokens()[smol_cpp_lm.model]["completion_tokens"] == entry["usage"]["completion_tokens"]
    (start, sid, instance, inputs), (end, eid, outputs, exception) = recorder.calls
    assert (start, end, sid) == ("start", "end", eid) and instance is smol_cpp_lm and exception is None
    assert inputs["messages"] == QUESTION and outputs == texts
    dspy.inspect_history(n=1)  # dspy's own reader takes the entry
