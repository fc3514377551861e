"""Export a PEFT LoRA adapter as a llama.cpp LoRA adapter GGUF, applied at load time to the shipped base GGUF.

    python -m agentdistill.lm.export runs/sft/adapter --lora            # -> runs/sft/adapter/gguf/lora-f32.gguf

    from agentdistill.lm.lora_export import export_lora_gguf
    lora = export_lora_gguf("runs/sft/adapter")            # Llama(model_path=<base GGUF>, lora_path=lora)

The other route of agentdistill.lm.export (which writes the merged model): the README's engine section compares
the two (bench/bench_export.py). Base lookup, caching and the q/k permutation are export.py's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from agentdistill.files import read_json_object
from agentdistill.lm.export import (ARCHITECTURES, KEY_FIELD, SOURCE_FIELD, _base_path, _cached, _checkpoint_dir,
                                    _default_out, _finish, _fingerprint, _key, _permute)
from agentdistill.lm.gguf_header import Header


def export_lora_gguf(adapter_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                     base_gguf: str | os.PathLike | None = None, outtype: str = "f32") -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp LoRA adapter GGUF (`Llama(model_path=base, lora_path=...)`).

    The format is convert_lora_to_gguf.py's: general.type "adapter", adapter.type "lora", adapter.lora.alpha, and
    per adapted weight `<gguf name>.lora_a` (peft's lora_A, [r, in]) and `.lora_b` (lora_B, [out, r]; for llama
    the q/k row permutation is applied to it, as to the base weight). llama.cpp scales by alpha / r per tensor;
    where peft scales otherwise (rsLoRA, rank_pattern, alpha_pattern) the difference is folded into lora_b.

    Args:
        adapter_dir: a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).
        out: the GGUF file to write. None: `<adapter_dir>/gguf/lora-<outtype>.gguf`.
        base_gguf: the base GGUF the adapter applies to. None: the shipped model it was trained on.
        outtype: "f32" (default, exact) or "f16" for the adapter tensors.

    Returns:
        The path of the adapter GGUF.

    Raises:
        ValueError: not a LoRA adapter, an unsupported adapter feature (DoRA, modules_to_save, embedding or lm_head
            targets), no base found, or an adapter that does not fit the base's tensors.
    """
    import gguf

    adapter_dir = _checkpoint_dir(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ValueError(f"{adapter_dir} is not a PEFT adapter folder (no adapter_config.json); export a full model "
                         "with export_gguf()")
    if outtype not in ("f32", "f16"):
        raise ValueError(f"LoRA outtype must be 'f32' or 'f16', got {outtype!r}")
    base = _base_path(adapter_dir, base_gguf)
    source = _fingerprint(adapter_dir)
    key = _key("lora", source, base, outtype)
    target = Path(out) if out is not None else _default_out(adapter_dir, f"lora-{outtype}.gguf", source)

    def build(tmp: Path) -> None:
        header = Header(base)
        arch = header.get("general.architecture")
        tensors = _lora_tensors(adapter_dir, header, arch)
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_string(KEY_FIELD, key)  # early in the file: _current() stops reading there
        writer.add_string(SOURCE_FIELD, source)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, tensors.alpha)
        for k in ("general.name", "general.basename", "general.size_label"):
            if (value := header.get(k)) is not None:
                writer.add_string(k, value)
        dtype = np.float16 if outtype == "f16" else np.float32
        for name, array in tensors.arrays:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=dtype))
        _finish(writer)

    return _cached(target, key, build)


class _LoraTensors:
    def __init__(self, alpha: float, arrays: list[tuple[str, np.ndarray]]):
        self.alpha, self.arrays = alpha, arrays


def _lora_tensors(adapter_dir: Path, reader, arch: str) -> _LoraTensors:
    import torch

    config = read_json_object(adapter_dir / "adapter_config.json")
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{adapter_dir} is a {config.get('peft_type')} adapter; llama.cpp loads LoRA adapters only")
    if config.get("use_dora"):
        raise ValueError(f"{adapter_dir} is a DoRA adapter, which llama.cpp cannot apply; export it merged with "
                         "export_gguf()")
    if config.get("modules_to_save"):
        raise ValueError(f"{adapter_dir} also trains whole modules ({config['modules_to_save']}), which a llama.cpp "
                         "LoRA cannot carry; export it merged with export_gguf()")
    if arch not in ARCHITECTURES:
        raise ValueError(f"base GGUF has architecture {arch!r}; the exporter knows {', '.join(ARCHITECTURES)}")
    weights = adapter_dir / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        raw = load_file(str(weights))
    elif (adapter_dir / "adapter_model.bin").is_file():
        raw = torch.load(adapter_dir / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{adapter_dir} holds no adapter_model.safetensors / adapter_model.bin")

    n_blocks = int(reader.get(f"{arch}.block_count"))
    n_head = int(reader.get(f"{arch}.attention.head_count"))
    n_kv = int(reader.get(f"{arch}.attention.head_count_kv") or n_head)
    shapes = {name: shape for name, shape, _ in reader.tensors}
    import gguf

    names = gguf.get_tensor_name_map({v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], n_blocks)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in raw.items():
        match = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight", key)
        if match is None:
            if "lora_embedding" in key or key.endswith(("embed_tokens.weight", "lm_head.weight")):
                raise ValueError(f"{adapter_dir} adapts the embeddings / lm_head ({key}); the base ties them and a "
                                 "llama.cpp LoRA would apply them to both: export it merged with export_gguf()")
            raise ValueError(f"unexpected tensor {key!r} in {adapter_dir}: not a lora_A / lora_B weight")
        module, which = match.groups()
        if module.endswith(("embed_tokens", "lm_head")):
            raise ValueError(f"{adapter_dir} adapts {module}; the base ties the embeddings to the output and a "
                             "llama.cpp LoRA would apply the change to both: export it merged with export_gguf()")
        pairs.setdefault(module, {})[which] = tensor.detach().to(torch.float32).numpy()

    alpha = float(config.get("lora_alpha") or config.get("r") or 8)
    r_default = int(config.get("r") or 8)
    rank_pattern, alpha_pattern = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    by_name: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{adapter_dir}: {module} has lora_{''.join(ab)} but not both lora_A and lora_B")
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in shapes:
            raise ValueError(f"adapter module {module!r} has no counterpart in the base GGUF: not an adapter of "
                             "this base; pass the right base_gguf=")
        a, b = ab["A"], ab["B"]
        out_dim, in_dim = shapes[name]
        rank = a.shape[0]
        if a.shape[1] != in_dim or b.shape[0] != out_dim or b.shape[1] != rank:
            raise ValueError(f"adapter {module}: lora_A {list(a.shape)} / lora_B {list(b.shape)} do not fit base "
                             f"tensor {name} {[out_dim, in_dim]}: not an adapter of this base; pass the right "
                             "base_gguf=")
        # what peft scales this module's B @ A by, vs what llama.cpp will (alpha / rank): fold any difference into B
        r_mod = _pattern(rank_pattern, module, r_default)
        a_mod = _pattern(alpha_pattern, module, alpha)
        peft_scale = a_mod / (r_mod ** 0.5 if config.get("use_rslora") else r_mod)
        factor = peft_scale / (alpha / rank)
        if factor != 1.0:
            b = b * factor
        if ARCHITECTURES[arch] and module.endswith("q_proj"):
            b = _permute(b, n_head, n_head)
        elif ARCHITECTURES[arch] and module.endswith("k_proj"):
            b = _permute(b, n_head, n_kv)
        by_name[name] = (a, b)
    if not by_name:
        raise ValueError(f"{adapter_dir} holds no LoRA tensors")
    arrays = []
    for name, _, _ in reader.tensors:  # the base file's order
        if name in by_name:
            a, b = by_name.pop(name)
            arrays += [(name + ".lora_a", a), (name + ".lora_b", b)]
    return _LoraTensors(alpha, arrays)


def _pattern(pattern: dict, module: str, default):
    """peft's rank_pattern / alpha_pattern lookup: a key matches the module name's end."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default
