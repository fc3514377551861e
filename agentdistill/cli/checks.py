"""What a run would fail on, found before any work and without loading a model: model names, the retrieval index,
the output folder, the tracking store, the question files. `distill --dry-run`, `distill` and `eval` run them first.

    problems = job_problems(cfg)      # ["[student] model: unknown model 'smollm2-136m-instruct'; did you mean ...",
                                      #  "[run] tracking_uri: MLflow tracking store http://... is not reachable ..."]
    if problems: raise Problems(problems)

Each problem is one line: where (the config key or the option), what is wrong, the fix.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

from agentdistill.cli.config import Config, ModelConfig
from agentdistill.cli.errors import Problem


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_problem(model: str, where: str, *, api_base: str = "", backend: str = "", option: str = "api_base") -> \
        str | None:
    """Why `model` cannot be loaded as the CLI would load it (see distill.make_lm), or None.

    A model behind api_base or a litellm provider prefix ("openai/...") is the server's or the API's to know.
    """
    from agentdistill.cli.distill import PROVIDERS
    from agentdistill.lm.models import SHIPPED

    prefix = model.split("/")[0] if "/" in model else ""
    if api_base or prefix in PROVIDERS:
        return None
    if model in SHIPPED:
        missing = [p for p in SHIPPED[model].packages if importlib.util.find_spec(p) is None]
        if missing:
            return (f"{where}: the shipped model {model!r} needs the package(s) {', '.join(missing)}; install the "
                    "models with `bash scripts/setup.sh` (or `pip install 'agentdistill[models]'`)")
        return None
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return None
        return (f"{where}: {path} holds no config.json / adapter_config.json; give a Hugging Face model folder "
                "(save_pretrained output), a PEFT adapter folder, or a shipped model name")
    if path.is_file():
        if path.suffix == ".gguf" and backend == "llama.cpp":
            return None
        if path.suffix == ".gguf":
            return f"{where}: {path} is a GGUF file; it runs with backend = \"llama.cpp\""
        return f"{where}: {path} is a file, not a model folder"
    if path.suffix == ".gguf" or model.startswith((".", "/", "~")) or model.count("/") > 1:
        return f"{where}: no model folder {model!r} (relative paths are read from {Path.cwd()})"
    if model.count("/") == 1:  # a hub id: offline, it has to be in the local cache already
        if _offline():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(model, "config.json"), str):
                return (f"{where}: {model!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; download "
                        f"it once online (`huggingface-cli download {model}`), or give a local folder")
        return None
    close = difflib.get_close_matches(model, list(SHIPPED), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return (f"{where}: unknown model {model!r}{hint} Known: {', '.join(SHIPPED)} (shipped), or a Hugging Face "
            f"folder, a hub id 'org/name', or '<provider>/<model>' with {option} (a server or an API)")


def index_problem(index: str, where: str) -> str | None:
    from agentdistill.tools.retrieval.colbert_search import IndexNotFoundError, resolve_index

    try:
        resolve_index(index)
    except IndexNotFoundError as e:
        return Problem.from_error(f"{where}: {e}", e)
    return None


def folder_problem(folder, where: str) -> str | None:
    from agentdistill.tracking.probe import folder_problem as why

    problem = why(Path(folder))
    absolute = Path(folder).expanduser().absolute()
    return f"{where}: cannot create {absolute}: {problem}; choose another folder" if problem else None


def store_problem(uri: str | None, where: str = "") -> str | None:
    from agentdistill.tracking.probe import TrackingStoreError, check_store

    try:
        check_store(uri, where=where)
    except TrackingStoreError as e:
        return Problem.from_error(str(e), e)
    return None


def data_problems(cfg: Config) -> list[str]:
    """The question files of [eval] and (when a variant trains) [trainset], read as the job reads them."""
    from agentdistill.benchmarks.loaders import BenchmarkFormatError, BenchmarkNotFoundError
    from agentdistill.cli.distill import load_evalsets, load_trainset, needs_trainset

    problems = []
    try:
        load_evalsets(cfg)
    except (BenchmarkNotFoundError, BenchmarkFormatError) as e:
        problems.append(Problem.from_error(f"[eval] benchmarks: {e}", e))
    if needs_trainset(cfg):
        try:
            load_trainset(cfg)
        except (BenchmarkNotFoundError, BenchmarkFormatError) as e:
            problems.append(Problem.from_error(f"[trainset] {'file' if cfg.trainset.file else 'benchmark'}: {e}", e))
    return problems


def _model_problems(model: ModelConfig, role: str) -> list[str]:
    found = [model_problem(model.model, f"[{role}] model", api_base=model.api_base, backend=model.backend)]
    if model.base_model:
        found.append(model_problem(model.base_model, f"[{role}] base_model"))
    return [p for p in found if p]


def job_problems(cfg: Config) -> list[str]:
    """Everything a run of `cfg` would fail on that can be found without loading a model."""
    from agentdistill.cli.distill import needs_teacher

    problems = _model_problems(cfg.student, "student")
    if needs_teacher(cfg):
        problems += _model_problems(cfg.teacher, "teacher")
    if cfg.task.family == "factual" and cfg.retrieval.index:
        problems.append(index_problem(cfg.retrieval.index, "[retrieval] index"))
    problems.append(folder_problem(cfg.run.output_dir, "[run] output_dir"))
    problems.append(store_problem(cfg.run.tracking_uri or None, "[run] tracking_uri" if cfg.run.tracking_uri else ""))
    problems += data_problems(cfg)
    return [p for p in problems if p]
