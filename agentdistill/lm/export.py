"""Export a trained student to GGUF, so llama.cpp runs it (several times the tokens/s of transformers on CPU).

    python -m agentdistill.lm.export runs/sft/model                     # -> runs/sft/model/gguf/model-q8_0.gguf
    python -m agentdistill.lm.export runs/sft/adapter --outtype f32     # a PEFT adapter: merged in float32 first
    python -m agentdistill.lm.export runs/sft/adapter --lora            # -> runs/sft/adapter/gguf/lora-f32.gguf

    from agentdistill.lm.export import export_gguf
    gguf = export_gguf("runs/sft/model", outtype="q8_0")
    student = agentdistill.local_lm(str(gguf), backend="llama.cpp", tokenizer="runs/sft/model")

The LoRA route (a llama.cpp adapter on the base GGUF) is agentdistill.lm.lora_export; the agreement check of an
export against its checkpoint, agentdistill.lm.agreement.

Which type to use (q8_0 for speed, f32 for parity with transformers): the README's engine section, measured by
bench/bench_export.py (results/gguf_export.json).

The student descends from a shipped GGUF (agentdistill.lm.models: SHIPPED), dequantized once into a Hugging Face
folder. That base GGUF is the template of the export: every metadata key/value of it (architecture, hyperparameters,
tokenizer, chat template) is copied and only `general.file_type` changes; the trained tensors are written in the base
file's tensor order under its tensor names (gguf.get_tensor_name_map), with the q/k row permutation that llama.cpp's
convert_hf_to_gguf.py applies to llama-architecture models (LlamaModel.permute: q with n_head, k with n_head_kv;
transformers' GGUF loader undid it when the base was converted). qwen2 needs none. Norms and other 1-D tensors stay
float32, as llama.cpp's converter and quantizer keep them.

The base a checkpoint descends from is found by agentdistill.lm.gguf_base (find_base_gguf, shipped_base);
failing that, pass `base_gguf=`.

Exports are cached next to the checkpoint (`<checkpoint>/gguf/`, or under $AGENTDISTILL_HOME/gguf-exports when the
checkpoint folder is read-only) and keyed by content: the GGUF carries `agentdistill.export.key`, a hash of the
checkpoint's fingerprint (agentdistill.lm.local.fingerprint: config, tokenizer and weight files by content; for an
adapter also its base folder's), the base GGUF's fingerprint, the output type and EXPORT_VERSION. A later call with
the same key returns the file at once; any change of weights, base or type re-exports. (Content, not modification
times: a copied or restored checkpoint keeps its key, and an older file swapped in, or another base_gguf, cannot pass
as current. The fingerprint is memoized by size + mtime, so the check costs one hash per changed weight file.) Writes
go to a temp file renamed into place under a file lock beside the output: concurrent exporters wait, then find the
finished file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from agentdistill.files import read_json_object
from agentdistill.lm.gguf_base import _adapter_base_dir, _base_path, _checkpoint_dir
from agentdistill.lm.gguf_header import Header

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the bytes written for the same inputs change
KEY_FIELD = "agentdistill.export.key"
SOURCE_FIELD = "agentdistill.export.source"  # the checkpoint's fingerprint, for people reading the file
OUTTYPES = ("f32", "f16", "q8_0")
# GGUF architecture -> whether llama.cpp's converter permutes the q/k rows (rotary pairs interleaved -> halves)
ARCHITECTURES = {"llama": True, "qwen2": False}
HF_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2"}  # config.json model_type -> GGUF general.architecture


# -- public API -------------------------------------------------------------------------------------------------

def export_gguf(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, *, outtype: str = "q8_0",
                base_gguf: str | os.PathLike | None = None) -> Path:
    """Write a checkpoint as a GGUF model file that llama.cpp loads (cached: see the module docstring).

    Args:
        checkpoint: a Hugging Face model folder (a full fine-tune, SFT's merged `<output_dir>/model`, or a converted
            shipped model itself) or a PEFT adapter folder (adapter_config.json), which is merged into its base with
            peft's `merge_and_unload()` in float32.
        out: the GGUF file to write. None: `<checkpoint>/gguf/model-<outtype>.gguf`.
        outtype: "q8_0" (default: the fastest on CPU; written as f16, then quantized by llama.cpp's own
            `llama_model_quantize`), "f32" (exact), or "f16". 1-D tensors (norms) stay float32 in all three.
        base_gguf: the GGUF the checkpoint descends from, the template for metadata and tensor layout. None: the
            shipped model it was trained from (found as the module docstring says).

    Returns:
        The path of the GGUF file.

    Raises:
        ValueError: unknown outtype, no base found, a base whose architecture or tensors do not match the checkpoint.
        FileNotFoundError: the checkpoint is not a model folder.
    """
    checkpoint = _checkpoint_dir(checkpoint)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    base = _base_path(checkpoint, base_gguf)
    source = _fingerprint(checkpoint)
    if (checkpoint / "adapter_config.json").is_file():  # the merge also depends on the base folder's weights
        base_ref = read_json_object(checkpoint / "adapter_config.json").get("base_model_name_or_path") or ""
        if base_ref and Path(base_ref).expanduser().is_dir():
            source += "+" + _fingerprint(Path(base_ref).expanduser())
    key = _key("model", source, base, outtype)
    target = Path(out) if out is not None else _default_out(checkpoint, f"model-{outtype}.gguf", source)

    def build(tmp: Path) -> None:
        if outtype != "q8_0":
            _write_model(checkpoint, base, tmp, outtype, key, source)
            return
        f16 = tmp.with_name(tmp.name + ".f16")
        try:
            _write_model(checkpoint, base, f16, "f16", key, source)
            quantize(f16, tmp, "q8_0")
        finally:
            f16.unlink(missing_ok=True)

    return _cached(target, key, build)


def quantize(source: str | os.PathLike, out: str | os.PathLike, outtype: str = "q8_0",
             threads: int | None = None) -> Path:
    """Quantize a GGUF with llama.cpp's own quantizer (llama_cpp.llama_model_quantize); 1-D tensors stay f32.

    Args:
        source: an f32 or f16 GGUF model file.
        out: where to write the quantized file (not atomically: export_gguf passes a temp file).
        outtype: a llama.cpp file type name, e.g. "q8_0", "q4_k_m" (LLAMA_FTYPE_MOSTLY_<OUTTYPE>).
        threads: quantizer threads (None: agentdistill.lm.engine.default_threads()).
    """
    import llama_cpp
    import llama_cpp._logger  # noqa: F401  (installs llama-cpp-python's log callback, governed by its logger)

    from agentdistill.lm.engine import default_threads

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{outtype.upper()}", None)
    if ftype is None:
        raise ValueError(f"llama.cpp has no file type {outtype!r}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or default_threads()
    quiet = logging.getLogger("llama-cpp-python")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the quantizer logs a line per tensor at INFO
    try:
        code = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(out), params)
    finally:
        quiet.setLevel(level)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize({source} -> {out}, {outtype}) failed with code {code}")
    return Path(out)


# -- the merged model -------------------------------------------------------------------------------------------

def _load_config(checkpoint: Path):
    from transformers import AutoConfig

    is_adapter = (checkpoint / "adapter_config.json").is_file()
    return AutoConfig.from_pretrained(_adapter_base_dir(checkpoint) if is_adapter else checkpoint)


def _load_state(checkpoint: Path) -> dict[str, np.ndarray]:
    """{hf name: float32 numpy array} of a checkpoint; an adapter is merged into its base (float32) first."""
    import torch
    from transformers import AutoModelForCausalLM

    if (checkpoint / "adapter_config.json").is_file():
        from peft import PeftModel

        base_model = AutoModelForCausalLM.from_pretrained(_adapter_base_dir(checkpoint), dtype=torch.float32)
        model = PeftModel.from_pretrained(base_model, str(checkpoint)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    return {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}


def _check_architecture(config, reader, checkpoint: Path, base: Path) -> str:
    arch = reader.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"base GGUF {base} has architecture {arch!r}; the exporter knows {', '.join(ARCHITECTURES)}")
    tokens = reader.get("tokenizer.ggml.tokens")
    base_dims = {
        "architecture": arch,
        "hidden size": reader.get(f"{arch}.embedding_length"),
        "layers": reader.get(f"{arch}.block_count"),
        "vocab": reader.get(f"{arch}.vocab_size") or (len(tokens) if tokens is not None else None),
        "attention heads": reader.get(f"{arch}.attention.head_count"),
        "kv heads": reader.get(f"{arch}.attention.head_count_kv"),
        "feed-forward size": reader.get(f"{arch}.feed_forward_length"),
    }
    ours = {
        "architecture": HF_MODEL_TYPES.get(config.model_type, config.model_type),
        "hidden size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "vocab": config.vocab_size,
        "attention heads": config.num_attention_heads,
        "kv heads": getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        "feed-forward size": config.intermediate_size,
    }
    differ = [f"{k} {ours[k]} vs {v}" for k, v in base_dims.items() if v is not None and ours[k] != v]
    if differ:
        raise ValueError(f"checkpoint {checkpoint} does not match base GGUF {base.name} ({'; '.join(differ)}): pass "
                         "as base_gguf= the GGUF the checkpoint was fine-tuned from")
    return arch


def _permute(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute: rotary pairs (interleaved in HF) -> llama.cpp's row order."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _to_gguf_names(state: dict, arch: str, n_blocks: int) -> dict[str, str]:
    import gguf

    arch_id = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, n_blocks)
    mapped = {}
    for hf in state:
        if hf.endswith(("rotary_emb.inv_freq", ".attn.masked_bias", ".attn.bias")):
            continue
        name = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"checkpoint tensor {hf!r} has no GGUF name for architecture {arch!r}")
        mapped[name] = hf
    return mapped


def _write_model(checkpoint: Path, base: Path, tmp: Path, outtype: str, key: str, source: str) -> None:
    import gguf

    reader = Header(base)
    if reader.get("general.type") == "adapter":
        raise ValueError(f"base_gguf {base} is a LoRA adapter, not a model")
    config = _load_config(checkpoint)
    arch = _check_architecture(config, reader, checkpoint, base)  # before loading any weights
    state = _load_state(checkpoint)
    by_gguf = _to_gguf_names(state, arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    permute = ARCHITECTURES[arch]

    writer = gguf.GGUFWriter(tmp, arch)
    writer.add_string(KEY_FIELD, key)  # early in the file: _current() stops reading there
    writer.add_string(SOURCE_FIELD, source)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}[outtype]
    changes = {gguf.Keys.General.FILE_TYPE: (gguf.GGUFValueType.UINT32, int(file_type))}
    template = checkpoint / "chat_template.jinja"  # a checkpoint that changed its template: write its own
    base_template = reader.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    if template.is_file() and base_template is not None and template.read_text() != base_template:
        logger.warning("%s has its own chat template; writing it instead of the base GGUF's", checkpoint)
        changes[gguf.Keys.Tokenizer.CHAT_TEMPLATE] = (gguf.GGUFValueType.STRING, template.read_text())
    _copy_metadata(reader, writer, changes)

    used = set()
    for name, shape, _ in reader.tensors:
        hf = by_gguf.get(name)
        if hf is None:
            raise ValueError(f"base GGUF tensor {name!r} (shape {list(shape)}) has no counterpart in checkpoint "
                             f"{checkpoint}: it is not a fine-tune of {base.name}; pass the right base_gguf=")
        used.add(name)
        array = state[hf]
        if array.shape != shape:
            raise ValueError(f"checkpoint tensor {hf!r} has shape {list(array.shape)}, base GGUF tensor {name!r} "
                             f"{list(shape)}: not a fine-tune of {base.name}; pass the right base_gguf=")
        writer.add_tensor(name, _prepare(name, hf, array, outtype, permute, n_head, n_kv))
    for name in sorted(set(by_gguf) - used):
        hf = by_gguf[name]
        if name == "output.weight":  # the base ties lm_head to the token embeddings
            embed = state.get(by_gguf.get("token_embd.weight", ""))
            if embed is not None and np.array_equal(embed, state[hf]):
                continue  # still tied: llama.cpp reuses token_embd, as in the base
            logger.warning("%s unties lm_head from the embeddings: writing output.weight", checkpoint)
            writer.add_tensor(name, _prepare(name, hf, state[hf], outtype, permute, n_head, n_kv))
            continue
        raise ValueError(f"checkpoint tensor {hf!r} ({name}) has no counterpart in base GGUF {base.name}: the "
                         "checkpoint's architecture differs from the base; pass the right base_gguf=")
    _finish(writer)


def _prepare(name: str, hf: str, array: np.ndarray, outtype: str, permute: bool, n_head: int, n_kv) -> np.ndarray:
    if permute and hf.endswith(("q_proj.weight", "q_proj.bias")):
        array = _permute(array, n_head, n_head)
    elif permute and hf.endswith(("k_proj.weight", "k_proj.bias")):
        array = _permute(array, n_head, n_kv)
    if array.ndim <= 1 or name.endswith("_norm.weight") or outtype == "f32":
        return np.ascontiguousarray(array, dtype=np.float32)
    return np.ascontiguousarray(array, dtype=np.float16)


def _copy_metadata(reader, writer, changes: dict) -> None:
    """Every key/value of the base, in its order, with `changes` {key: (value type, value)} in place (or added)."""
    import gguf

    changes = dict(changes)
    for key, (vtype, sub, value) in reader.fields.items():
        if key == gguf.Keys.General.ARCHITECTURE:
            continue  # GGUFWriter writes it itself, first
        if key in changes:
            vtype, value = changes.pop(key)
            sub = None
        writer.add_key_value(key, value, gguf.GGUFValueType(vtype),
                             sub_type=None if sub is None else gguf.GGUFValueType(sub))
        if key == gguf.Keys.General.ALIGNMENT:
            writer.data_alignment = int(value)
    for key, (vtype, value) in changes.items():
        writer.add_key_value(key, value, gguf.GGUFValueType(vtype))


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# -- caching, files ---------------------------------------------------------------------------------------------

def _fingerprint(path: Path) -> str:
    from agentdistill.lm.local import fingerprint

    return fingerprint(path)


def _key(kind: str, source: str, base: Path, outtype: str) -> str:
    text = json.dumps({"kind": kind, "version": EXPORT_VERSION, "source": source, "base": _fingerprint(base),
                       "outtype": outtype}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _default_out(checkpoint: Path, filename: str, source: str) -> Path:
    """<checkpoint>/gguf/<filename>, or $AGENTDISTILL_HOME/gguf-exports/<name>-<source>/ for a read-only folder."""
    folder = checkpoint / "gguf"  # a subfolder: local.fingerprint() globs the checkpoint's top level only
    try:
        folder.mkdir(exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder / filename
    except OSError:
        pass
    from agentdistill.settings import home

    return home() / "gguf-exports" / f"{checkpoint.name}-{source[:12]}" / filename


def _current(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        return Header(path, stop_at=KEY_FIELD).get(KEY_FIELD) == key
    except Exception:  # noqa: BLE001  (a truncated or foreign file is simply not current)
        return False


def _cached(target: Path, key: str, build: Callable[[Path], None]) -> Path:
    from filelock import FileLock

    from agentdistill.lm.models import atomic_file

    target = target.expanduser().resolve()
    if _current(target, key):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        if _current(target, key):
            return target  # exported by a concurrent caller while we waited
        atomic_file(target, build)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a checkpoint (HF folder or PEFT adapter) to GGUF")
    parser.add_argument("checkpoint")
    parser.add_argument("--outtype", default=None,
                        help="q8_0 (default) | f32 | f16; with --lora: f32 (default) | f16")
    parser.add_argument("--out", default=None, help="output file (default: <checkpoint>/gguf/...)")
    parser.add_argument("--base-gguf", default=None, help="the GGUF the checkpoint descends from (default: found)")
    parser.add_argument("--lora", action="store_true", help="write a llama.cpp LoRA adapter GGUF instead")
    args = parser.parse_args(argv)
    if args.lora:
        from agentdistill.lm.lora_export import export_lora_gguf

        path = export_lora_gguf(args.checkpoint, args.out, base_gguf=args.base_gguf, outtype=args.outtype or "f32")
    else:
        path = export_gguf(args.checkpoint, args.out, outtype=args.outtype or "q8_0", base_gguf=args.base_gguf)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
