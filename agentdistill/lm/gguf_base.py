"""Which shipped GGUF a fine-tuned checkpoint descends from: the template of its export (agentdistill.lm.export).

    from agentdistill.lm.gguf_base import find_base_gguf, shipped_base
    shipped_base("runs/sft/model")          # "smollm2-135m-instruct", or None
    find_base_gguf("runs/sft/adapter")      # the shipped GGUF's path, or a ValueError saying to pass base_gguf=

Found from, in order: the folder being a converted shipped model itself, the adapter's `base_model_name_or_path` /
config.json's `_name_or_path` (a shipped name or a folder, followed recursively), the SFT run's `run_settings.json`
(its `base_fingerprint`, next to `<output_dir>/model`), and the `_model_name_or_path` that transformers' GGUF loader
records (the base GGUF's general.name, kept by every save_pretrained since). Transformers 5 no longer writes
`_name_or_path`, so for SFT's merged `<output_dir>/model` the run settings (or the recorded GGUF name) are what
identify the base.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from agentdistill.files import read_json_object
from agentdistill.lm.gguf_header import Header


def _checkpoint_dir(checkpoint) -> Path:
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_dir() or not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        raise FileNotFoundError(f"{path} is not a Hugging Face model folder nor a PEFT adapter folder "
                                "(no config.json / adapter_config.json)")
    return path


def find_base_gguf(checkpoint: str | os.PathLike) -> Path:
    """The shipped GGUF a checkpoint descends from (see the module docstring), or a ValueError saying what to do."""
    from agentdistill.lm.models import gguf_path

    checkpoint = _checkpoint_dir(checkpoint)
    name = shipped_base(checkpoint)
    if name is None:
        raise ValueError(
            f"cannot tell which GGUF {checkpoint} descends from: it is no converted shipped model, and neither "
            "adapter_config.json's base_model_name_or_path, config.json's _name_or_path / _model_name_or_path, nor "
            "an SFT run_settings.json beside it names one of the shipped models "
            f"({', '.join(_shipped_names())}); pass base_gguf= with the GGUF it was fine-tuned from "
            "(e.g. base_gguf=agentdistill.lm.models.gguf_path('smollm2-135m-instruct'))")
    return gguf_path(name)


def shipped_base(checkpoint: str | os.PathLike) -> str | None:
    """The name of the shipped model (agentdistill.lm.models.SHIPPED) a checkpoint folder descends from, or None."""
    return _trace(Path(checkpoint).expanduser().resolve(), set())


def _shipped_names():
    from agentdistill.lm.models import SHIPPED

    return list(SHIPPED)


def _trace(folder: Path, seen: set) -> str | None:
    from agentdistill.lm.models import SHIPPED, converted_dir

    if folder in seen:
        return None
    seen.add(folder)
    for name in SHIPPED:
        if folder == converted_dir(name).expanduser().resolve():
            return name
    references = []
    for file, keys in (("adapter_config.json", ("base_model_name_or_path",)),
                       ("config.json", ("_name_or_path", "name_or_path"))):
        data = read_json_object(folder / file)
        references += [data[k] for k in keys if isinstance(data.get(k), str) and data[k]]
    for ref in references:
        if ref in SHIPPED:
            return ref
        path = Path(ref).expanduser()
        if path.is_dir():
            if found := _trace(path.resolve(), seen):
                return found
        elif path.name in SHIPPED and path.parent.name == "models":  # a converted folder of another machine
            return path.name
    for where in (folder, folder.parent, folder.parent.parent):  # <out>/model, <out>/checkpoints/checkpoint-N
        recorded = read_json_object(where / "run_settings.json").get("base_fingerprint")
        if recorded:
            from agentdistill.lm.local import fingerprint

            for name in SHIPPED:
                if fingerprint(converted_dir(name)) == recorded:
                    return name
            break  # the nearest run_settings.json is this checkpoint's: a different base is not a shipped one
    gguf_name = read_json_object(folder / "config.json").get("_model_name_or_path")  # transformers' GGUF loader
    if gguf_name:
        for name in SHIPPED:
            if _shipped_general_name(name) == gguf_name:
                return name
    return None


@functools.lru_cache(maxsize=None)
def _shipped_general_name(name: str) -> str | None:
    """general.name of a shipped GGUF, read from the start of its (first) file: a multi-part one is not assembled."""
    from agentdistill.lm.models import _package_dir, get_shipped

    model = get_shipped(name)
    try:
        return Header(_package_dir(model.packages[0]) / model.files[0], stop_at="general.name").get("general.name")
    except Exception:  # noqa: BLE001  (not installed, or unreadable: it cannot be this checkpoint's base here)
        return None


def _base_path(checkpoint: Path, base_gguf) -> Path:
    if base_gguf is None:
        return find_base_gguf(checkpoint)
    base = Path(base_gguf).expanduser().resolve()
    if not base.is_file():
        raise FileNotFoundError(f"base_gguf {base} does not exist")
    return base


def _adapter_base_dir(adapter: Path) -> Path:
    """The Hugging Face folder an adapter's weights go on: its base_model_name_or_path, else its shipped base."""
    from agentdistill.lm.models import resolve_model_path

    base_ref = read_json_object(adapter / "adapter_config.json").get("base_model_name_or_path") or ""
    if base_ref in _shipped_names() or (base_ref and Path(base_ref).expanduser().is_dir()):
        return Path(resolve_model_path(base_ref))
    if (name := shipped_base(adapter)) is not None:
        return Path(resolve_model_path(name))
    raise ValueError(f"the adapter {adapter} names base_model_name_or_path={base_ref!r}, which is no local folder "
                     "nor shipped model: merge it yourself (peft merge_and_unload + save_pretrained) and export "
                     "that folder")
