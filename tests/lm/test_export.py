"""GGUF export (agentdistill.lm.export) on the shipped SmolLM2-135M: exact round trip, agreement with transformers.

The reference is independent of the exporter: gguf.GGUFReader + gguf.quants.dequantize for the file contents, the
transformers engine (which merges a PEFT adapter itself) for generation. The LoRA adapter is not a no-op: peft
LoRA r=16 on all seven projections with lora_B set from a fixed seed, so the greedy outputs change.
"""

import json
import shutil
import threading
import time

import numpy as np
import pytest

from agentdistill.lm.agreement import AGREEMENT_PROMPTS as PROMPTS
from agentdistill.lm.agreement import agreement_chat as chat
from agentdistill.lm.agreement import llama_greedy
from agentdistill.lm.models import converted_dir, gguf_path

from .conftest import SMOL

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_STD = 0.02  # lora_B ~ N(0, 0.02^2), scaled by alpha/r = 2: changes most answers, keeps them fluent
TOKENS = 32


def make_adapter(folder, seed=0, std=LORA_STD):
    """A peft LoRA adapter on the converted SmolLM2 with random lora_B (seeded): a real, non-trivial change."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)  # lora_A: peft's kaiming init
    base = AutoModelForCausalLM.from_pretrained(converted_dir(SMOL), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return make_adapter(tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="module")
def reference(adapter):
    """The transformers engine on the adapter folder (it merges the adapter): greedy token ids per prompt."""
    import torch

    from agentdistill.lm.chat import render_prompt
    from agentdistill.lm.engine import TransformersEngine

    loaded = TransformersEngine(adapter).load()
    cache = {}

    def prompt_ids(prompt):
        text = render_prompt(loaded.tokenizer, chat(prompt))
        return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]

    def greedy(i):
        if i not in cache:
            ids = prompt_ids(PROMPTS[i])
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.inference_mode():
                    out = loaded.model.generate(
                        torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                        max_new_tokens=TOKENS, do_sample=False, eos_token_id=sorted(loaded.eos_ids),
                        pad_token_id=loaded.pad_id)
            finally:
                torch.set_num_threads(previous)
            cache[i] = (ids, out[0, len(ids):].tolist())
        return cache[i]

    def gap(i, n, other):
        """How far the transformers model prefers its token n over `other` there (logits)."""
        ids, expected = greedy(i)
        with torch.inference_mode():
            logits = loaded.model(torch.tensor([ids + expected[:n]])).logits[0, -1]
        return float(logits[expected[n]] - logits[other])

    greedy.eos, greedy.tokenizer, greedy.gap = loaded.eos_ids, loaded.tokenizer, gap
    return greedy


@pytest.fixture(scope="module")
def llamas():
    """Open llama_cpp.Llama models (closed at the end, so no __del__ noise at exit)."""
    from llama_cpp import Llama

    opened = {}

    def get(model, lora=None):
        key = (str(model), str(lora))
        if key not in opened:
            opened[key] = Llama(model_path=str(model), lora_path=None if lora is None else str(lora), n_ctx=1024,
                                n_threads=1, n_threads_batch=1, verbose=False)
        return opened[key]

    yield get
    for llama in opened.values():
        llama.close()


def cpp_greedy(llama, ids, eos):
    return llama_greedy(llama, ids, eos, TOKENS)


def leading(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def agreement(llama, reference, indices):
    """{prompt index: number of leading tokens equal to the transformers engine's}; full = all tokens equal."""
    result = {}
    for i in indices:
        ids, expected = reference(i)
        got = cpp_greedy(llama, ids, reference.eos)
        result[i] = (got == expected, leading(got, expected), got, expected)
    return result


@pytest.fixture(scope="module")
def base_reader():
    import gguf

    return gguf.GGUFReader(gguf_path(SMOL))  # ~10 s: it parses all 98k token and merge strings


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """The unmodified converted SmolLM2 folder exported at f32."""
    from agentdistill.lm.export import export_gguf

    return export_gguf(converted_dir(SMOL), tmp_path_factory.mktemp("rt") / "smol-f32.gguf", outtype="f32")


@pytest.fixture(scope="module")
def merged(adapter, tmp_path_factory):
    from agentdistill.lm.export import export_gguf

    folder = tmp_path_factory.mktemp("merged")
    cache = {}

    def get(outtype):
        if outtype not in cache:
            cache[outtype] = export_gguf(adapter, folder / f"adapter-{outtype}.gguf", outtype=outtype)
        return cache[outtype]

    return get


# -- file contents ----------------------------------------------------------------------------------------------

def test_round_trip_f32_equals_the_dequantized_base(round_trip, base_reader):
    import gguf

    from agentdistill.lm.gguf_header import Header

    base, ours = base_reader, gguf.GGUFReader(round_trip)
    assert [t.name for t in ours.tensors] == [t.name for t in base.tensors]  # the base's order and names
    assert "output.weight" not in {t.name for t in ours.tensors}  # tied embeddings stay tied, as in the base
    for b, o in zip(base.tensors, ours.tensors):
        assert o.tensor_type == gguf.GGMLQuantizationType.F32
        expected = gguf.quants.dequantize(b.data, b.tensor_type)
        assert np.array_equal(np.asarray(o.data), expected), b.name  # exact: q/k permuted back bit for bit

    for key, field in base.fields.items():
        if key.startswith("GGUF.") or key == "general.file_type":
            continue
        assert key in ours.fields, key
        assert ours.fields[key].types == field.types and ours.fields[key].contents() == field.contents(), key
    assert ours.fields["general.file_type"].contents() == gguf.LlamaFileType.ALL_F32
    assert list(base.fields) == [k for k in ours.fields if not k.startswith("agentdistill.")]  # same order
    # the exporter's fast header reader (used below too) reads what GGUFReader reads
    header = Header(round_trip)
    assert {k: v[2] for k, v in header.fields.items()} == \
        {k: f.contents() for k, f in ours.fields.items() if not k.startswith("GGUF.")}
    assert [(n, s, t) for n, s, t in header.tensors] == \
        [(t.name, tuple(int(d) for d in reversed(t.shape.tolist())), int(t.tensor_type)) for t in ours.tensors]


def test_q8_0_export_is_quantized_by_llama_cpp_and_generates(adapter, merged, reference, llamas, base_reader):
    import gguf

    from agentdistill.lm.export import export_gguf
    from agentdistill.lm.gguf_header import Header

    path = merged("q8_0")
    header = Header(path)
    assert header.get("general.file_type") == gguf.LlamaFileType.MOSTLY_Q8_0
    types = {name: gguf.GGMLQuantizationType(t).name for name, _, t in header.tensors}
    assert len(types) == 272
    assert {v for k, v in types.items() if k.endswith("_norm.weight")} == {"F32"}  # 1-D stays f32
    assert {v for k, v in types.items() if not k.endswith("_norm.weight")} == {"Q8_0"}
    for key, field in base_reader.fields.items():  # llama.cpp's quantizer kept the base's metadata
        if not key.startswith("GGUF.") and key != "general.file_type":
            assert header.get(key) == field.contents(), key
    f16_size = merged("f16").stat().st_size
    assert 0.45 < path.stat().st_size / f16_size < 0.6  # 8.5 bits per weight vs 16
    stamp = path.stat().st_mtime_ns  # the key survived llama.cpp's quantizer: a second call reuses the file
    assert export_gguf(adapter, path, outtype="q8_0") == path
    assert path.stat().st_mtime_ns == stamp
    runs = agreement(llamas(path), reference, range(3))
    assert all(len(got) > 0 for _, _, got, _ in runs.values())
    assert sum(n for _, n, _, _ in runs.values()) >= 10  # follows the merged model for a while on 3 prompts


# -- generation agrees with the transformers engine -------------------------------------------------------------

# f32: every prompt, every token. f16 rounds each weight (relative error 2^-11), and base + LoRA computes
# W x + s B (A x) instead of (W + s B A) x, so where the merged model's two best next tokens are a hair apart they
# may pick the other one: allowed only at such a near-tie (measured: one of 20 prompts, at a top-2 gap of 0.0017
# logits), at most 1 of 3 / 2 of 20 prompts. A wrong permutation, scale or tensor diverges at gaps of whole logits.
NEAR_TIE = 0.02


def check_agreement(llama, reference, indices, *, max_ties, label):
    ties, wrong = {}, {}
    for i, (same, n, got, expected) in agreement(llama, reference, indices).items():
        if same:
            continue
        gap = reference.gap(i, n, got[n]) if n < len(got) and n < len(expected) else float("inf")
        info = (n, round(gap, 4), reference.tokenizer.decode(got), reference.tokenizer.decode(expected))
        (ties if gap < NEAR_TIE and max_ties else wrong)[i] = info
    assert not wrong, f"{label}: greedy tokens differ (leading agreement, logit gap, got, expected): {wrong}"
    assert len(ties) <= max_ties, f"{label}: too many near-tie divergences: {ties}"


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_merged_export_agrees_with_transformers_on_3_prompts(merged, reference, llamas, outtype):
    check_agreement(llamas(merged(outtype)), reference, range(3), max_ties=0 if outtype == "f32" else 1,
                    label=outtype)


@pytest.mark.slow  # 20 prompts x 32 tokens through transformers and two llama.cpp models: ~100 s on 2 shared cores
@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_merged_export_agrees_with_transformers_on_20_prompts(merged, reference, llamas, outtype):
    check_agreement(llamas(merged(outtype)), reference, range(len(PROMPTS)), max_ties=0 if outtype == "f32" else 2,
                    label=outtype)


def test_lora_adapter_gguf_matches_the_merged_model_and_changes_the_base(adapter, round_trip, reference, llamas,
                                                                          tmp_path):
    import gguf

    from agentdistill.lm.lora_export import export_lora_gguf

    lora = export_lora_gguf(adapter, tmp_path / "lora.gguf")
    reader = gguf.GGUFReader(lora)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["adapter.lora.alpha"].contents() == 32.0
    names = [t.name for t in reader.tensors]
    assert len(names) == 30 * 7 * 2 and names[:2] == ["blk.0.ffn_down.weight.lora_a", "blk.0.ffn_down.weight.lora_b"]
    q_a = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight.lora_a")
    assert list(q_a.shape) == [576, 16]  # ggml order: [in, r]

    # on the exact (f32) base, base + LoRA adapter in llama.cpp == the merged model in transformers
    indices = range(3)
    check_agreement(llamas(round_trip, lora), reference, indices, max_ties=1, label="f32 base + LoRA")
    # ... and the adapter does change the base's answers
    plain = agreement(llamas(round_trip), reference, indices)
    assert sum(not same for same, *_ in plain.values()) >= 2

    # on the shipped Q4_1 base it loads, generates, and changes the output relative to Q4_1 alone
    q4_lora = llamas(gguf_path(SMOL), lora)
    q4 = llamas(gguf_path(SMOL))
    changed = 0
    for i in indices:
        ids, _ = reference(i)
        a, b = cpp_greedy(q4_lora, ids, reference.eos), cpp_greedy(q4, ids, reference.eos)
        assert a
        changed += a != b
    assert changed >= 2


# -- caching ----------------------------------------------------------------------------------------------------

def test_export_is_reused_until_the_checkpoint_changes(adapter, tmp_path):
    from agentdistill.lm.export import KEY_FIELD
    from agentdistill.lm.gguf_header import Header
    from agentdistill.lm.lora_export import export_lora_gguf

    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    first = export_lora_gguf(folder)
    assert first == folder / "gguf" / "lora-f32.gguf"  # the default place: inside the checkpoint
    stamp = first.stat().st_mtime_ns
    key = Header(first, stop_at=KEY_FIELD).get(KEY_FIELD)
    start = time.perf_counter()
    assert export_lora_gguf(folder) == first
    assert time.perf_counter() - start < 1.0 and first.stat().st_mtime_ns == stamp  # reused, not rewritten
    copy = tmp_path / "copied"  # a copy (new mtimes, same content) keeps the key
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("gguf"))
    assert Header(export_lora_gguf(copy), stop_at=KEY_FIELD).get(KEY_FIELD) == key

    # other weights -> another key -> exported again
    make_adapter(folder, seed=1)
    again = export_lora_gguf(folder)
    assert again == first and first.stat().st_mtime_ns != stamp
    assert Header(again, stop_at=KEY_FIELD).get(KEY_FIELD) != key
    # a foreign or truncated file in its place is replaced
    again.write_bytes(b"GGUF not really")
    assert Header(export_lora_gguf(folder), stop_at=KEY_FIELD).get(KEY_FIELD) is not None
    assert not [p.name for p in (folder / "gguf").iterdir() if ".tmp-" in p.name]  # no temp leftovers


def test_concurrent_exports_wait_and_share_one_file(adapter, tmp_path):
    import gguf

    from agentdistill.lm.lora_export import export_lora_gguf

    out = tmp_path / "shared.gguf"
    results, errors = [], []

    def run():
        try:
            results.append(export_lora_gguf(adapter, out))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [out] * 4
    assert len(gguf.GGUFReader(out).tensors) == 420
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temp leftovers


# -- finding the base, errors -----------------------------------------------------------------------------------

def test_the_base_is_found_from_what_sft_writes(adapter, tmp_path):
    from agentdistill.lm.gguf_base import find_base_gguf, shipped_base
    from agentdistill.lm.local import fingerprint

    assert shipped_base(converted_dir(SMOL)) == SMOL
    assert shipped_base(adapter) == SMOL  # adapter_config.json base_model_name_or_path -> the converted folder
    assert find_base_gguf(adapter) == gguf_path(SMOL)
    config = json.loads((converted_dir(SMOL) / "config.json").read_text())
    # SFT's merged <output_dir>/model: transformers 5 writes no _name_or_path, but keeps the GGUF loader's name
    merged_model = tmp_path / "run" / "model"
    merged_model.mkdir(parents=True)
    (merged_model / "config.json").write_text(json.dumps(config))
    assert "_name_or_path" not in config and shipped_base(merged_model) == SMOL
    # ... and without that, the run's run_settings.json (base fingerprint) beside it
    del config["_model_name_or_path"]
    (merged_model / "config.json").write_text(json.dumps(config))
    assert shipped_base(merged_model) is None
    (merged_model.parent / "run_settings.json").write_text(
        json.dumps({"base_fingerprint": fingerprint(converted_dir(SMOL))}))
    assert shipped_base(merged_model) == SMOL


def test_no_base_found_says_pass_base_gguf(tmp_path):
    from agentdistill.lm.export import export_gguf
    from agentdistill.lm.lora_export import export_lora_gguf

    config = json.loads((converted_dir(SMOL) / "config.json").read_text())
    del config["_model_name_or_path"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"cannot tell which GGUF .* pass base_gguf="):
        export_gguf(tmp_path)
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "someone/else", "r": 8}))
    with pytest.raises(ValueError, match="pass base_gguf="):
        export_lora_gguf(lora)
    with pytest.raises(ValueError, match="outtype must be one of"):
        export_gguf(converted_dir(SMOL), tmp_path / "x.gguf", outtype="q4_0")


def test_mismatched_base_is_refused(adapter, tmp_path):
    import gguf

    from agentdistill.lm.export import export_gguf
    from agentdistill.lm.gguf_header import Header
    from agentdistill.lm.lora_export import export_lora_gguf

    qwen = gguf_path("qwen2.5-coder-0.5b-instruct")
    with pytest.raises(ValueError, match=r"does not match base GGUF .*hidden size 576 vs 896.*layers 30 vs 24"):
        export_gguf(adapter, tmp_path / "a.gguf", base_gguf=qwen)
    with pytest.raises(ValueError, match="no counterpart in the base GGUF|do not fit base tensor"):
        export_lora_gguf(adapter, tmp_path / "b.gguf", base_gguf=qwen)

    # a base with one tensor the checkpoint lacks (same hyperparameters): named in the error, nothing written
    header = Header(gguf_path(SMOL))
    writer = gguf.GGUFWriter(tmp_path / "odd-base.gguf", "llama")
    for key, (vtype, sub, value) in header.fields.items():
        if key != "general.architecture":
            writer.add_key_value(key, value, gguf.GGUFValueType(vtype),
                                 sub_type=None if sub is None else gguf.GGUFValueType(sub))
    for name, shape, _ in [*header.tensors[:2], ("blk.0.attn_q_norm.weight", (64,), 0)]:
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="'blk.0.attn_q_norm.weight' .*no counterpart in checkpoint"):
        export_gguf(converted_dir(SMOL), tmp_path / "c.gguf", outtype="f32", base_gguf=tmp_path / "odd-base.gguf")
    assert not list(tmp_path.glob("c.gguf*")) and not list(tmp_path.glob(".c.gguf.tmp-*"))


def test_unsupported_adapters_are_refused(adapter, tmp_path):
    from agentdistill.lm.lora_export import export_lora_gguf

    dora = tmp_path / "dora"
    shutil.copytree(adapter, dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ValueError, match="DoRA"):
        export_lora_gguf(dora)
    (dora / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": ["lm_head"]}))
    with pytest.raises(ValueError, match="modules_to_save|trains whole modules"):
        export_lora_gguf(dora)
