"""The main job's TOML config: one pydantic model per table, validated with errors that name the fix.

    cfg = load_config("configs/quickstart.toml")     # ConfigError: "unknown key 'epoch' in [sft]; did you mean 'epochs'?"
    cfg.variants()                                   # ["student-agent", "student-agent+sag", "agent-distill", ...]

Relative input paths (question files, data folders, model and index folders) are read from the config file's
folder first, then from the working folder; [run] output_dir is relative to the working folder.

Tables and keys (all optional except [teacher] and [student] model names; see configs/quickstart.toml):

    [run]       experiment, output_dir, seed, threads, tracking_uri, publish_dir
    [task]      family ("math" | "factual"), max_steps, max_tokens
    [teacher]   model, api_base, server, backend, api_key_env, temperature, max_tokens
    [student]   model, api_base, server, backend, trained_backend, base_model, temperature, max_tokens
    [trainset]  benchmark | file, split, limit, data_dir
    [retrieval] index | url, k, mode           (factual tasks: the search tool's index or server)
    [distill]   variants, first_thought_prefix, teacher_threads, seed_store
    [sft]       any field of agentdistill.optimizers SFT (lora_r, epochs, learning_rate, max_length, ...)
    [eval]      benchmarks, limit, split, data_dir, judge_model
    [sag]       enabled, programs, variants, n, temperature, top_p

A file is validated strictly (pydantic's strict mode: "yes" is not true, "10" is not 10, 1.5 is not an integer),
every problem of a file at once; relations between keys and names from other modules (benchmarks, servers,
variants) are checked after that, in `_check_values`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

DEFAULT_VARIANTS = ("student-cot", "student-agent", "cot-distill", "agent-distill")
# the teacher's own rows: the ceiling the student is distilled towards (evaluated, never trained)
VARIANTS = DEFAULT_VARIANTS + ("teacher-cot", "teacher-agent", "agent-distill+ftp")
VARIANT_DOC = {
    "student-cot": "the student before distillation, chain-of-thought prompting",
    "student-agent": "the student before distillation, as a code agent",
    "cot-distill": "the student after CoTDistill (SFT on the teacher's chains of thought)",
    "agent-distill": "the student after AgentDistill (SFT on the teacher's code-agent trajectories)",
    "teacher-cot": "the teacher, chain-of-thought prompting (reference: not trained)",
    "teacher-agent": "the teacher as a code agent (reference: the behaviour agent-distill imitates)",
    "agent-distill+ftp": "the student after AgentDistill on trajectories seeded by the first-thought prefix",
}
SAG_SUFFIX = "+sag"  # a row of the results table: a variant, or a variant wrapped in SelfConsistency


class ConfigError(ValueError):
    """A config problem; the message names the table, the key and the fix."""


class Table(BaseModel):
    """A table of the config file: a key it does not define is an error (with a suggestion), never ignored."""

    model_config = ConfigDict(extra="forbid")


class RunConfig(Table):
    experiment: str = "agentdistill"  # MLflow experiment (one run per variant)
    output_dir: str = "runs/agentdistill"  # trajectories, checkpoints, eval JSONL, the results table
    seed: int = 0
    threads: int = Field(1, ge=1)  # evaluation threads
    tracking_uri: str = ""  # "" -> $MLFLOW_TRACKING_URI or sqlite:///mlflow.db
    publish_dir: str = ""  # also write the summary (summary.json: every cell with n and 95% intervals) here, e.g.
    # "results/table2_cpu" for the README's tables (scripts/readme_tables.py)


class TaskConfig(Table):
    family: Literal["math", "factual"] = "math"  # "math": Python-only agent; "factual": agent with the retrieval tool
    max_steps: int = Field(5, ge=1)  # agent steps per question
    max_tokens: int = Field(512, ge=16)  # per LM call (agent step / CoT answer)


class ModelConfig(Table):
    model: str = ""  # shipped name, HF folder/hub id (local engine), or "<provider>/<name>" (litellm, with api_base)
    api_base: str = ""  # OpenAI-compatible server (vLLM, SGLang), e.g. "http://gpu:8000/v1"
    server: str = ""  # with api_base: "vllm" (default) | "sglang" | "llama.cpp" | "agentdistill" - how the server
    # continues the agent's partial assistant turn (agentdistill.lm.server_lm)
    backend: str = ""  # local engine: "transformers" (default) or "llama.cpp" (several times faster on CPU)
    trained_backend: str = ""  # student only: the fine-tuned student's engine; "" -> llama.cpp on CPU (its GGUF
    # export), transformers on GPUs and for checkpoints llama.cpp cannot take
    api_key_env: str = ""  # environment variable holding the API key
    base_model: str = ""  # student only: its weights (HF folder / hub id) when `model` is a server, for fine-tuning
    temperature: float = 0.0
    max_tokens: int = 0  # per LM call of this model's programs; 0 -> [task] max_tokens


class TrainsetConfig(Table):
    benchmark: str = "math"  # a registry name (math, math_medium, hotpotqa) ...
    file: str = ""  # ... or a question file of the paper's format (overrides benchmark)
    split: str = "train"
    limit: int = Field(100, ge=1)
    data_dir: str = ""  # "" -> $AGENTDISTILL_DATA or the shared data folder


class RetrievalConfig(Table):
    index: str = ""  # a ColBERT index name or folder (agentdistill index build ...)
    url: str = ""  # ... or a ColBERT search server (agentdistill index serve ...)
    k: int = 3  # passages per search
    mode: str = "hybrid"  # local index: "hybrid" (BM25 + ColBERT fused), "colbert" or "bm25" alone


class DistillConfig(Table):
    variants: list[str] = Field(default_factory=lambda: list(DEFAULT_VARIANTS))
    first_thought_prefix: bool = True  # seed the teacher's first step with its own first thought
    teacher_threads: int = Field(1, ge=1)  # concurrent teacher episodes while collecting trajectories
    seed_store: str = ""  # a teacher store file (e.g. committed with the repo) merged into the job's store first: the
    # teacher is asked only for what it lacks under the current settings (`distill --regenerate-teacher` skips it)


class EvalConfig(Table):
    benchmarks: list[str] = Field(default_factory=lambda: ["math500"])
    limit: int = Field(50, ge=0)  # first N questions of each benchmark (0: all)
    split: str = "test"
    data_dir: str = ""
    judge_model: str = ""  # optional LLM judge for factual sets (litellm model name), logged separately


class SagConfig(Table):
    enabled: bool = True  # also evaluate variants wrapped in SelfConsistency
    programs: list[str] = Field(default_factory=lambda: ["agent", "cot"])  # which kinds get a +sag row ("cot":
    # answer voting, classic self-consistency; "agent": the paper's self-consistent action generation)
    variants: list[str] = Field(default_factory=list)  # only these variants get a +sag row ([]: every one of
    # `programs`)
    n: int = Field(8, ge=1)
    temperature: float = 0.4
    top_p: float = Field(0.8, gt=0, le=1)


def program_kind(variant: str) -> str:
    """"cot" or "agent": the program a variant evaluates (student-cot, teacher-cot, cot-distill -> "cot")."""
    variant = variant_of(variant)
    return "cot" if variant.endswith("-cot") or variant == "cot-distill" else "agent"


def variant_of(row: str) -> str:
    """The variant a results row evaluates: "agent-distill+ftp+sag" -> "agent-distill+ftp"."""
    return row.removesuffix(SAG_SUFFIX)


def is_distilled(variant: str) -> bool:
    """cot-distill, agent-distill(+ftp) are compiled (teacher outputs + SFT); the other variants are only evaluated."""
    return "-distill" in variant_of(variant)


def uses_prefix(variant: str, cfg: "Config") -> bool:
    """Whether an agent-distill variant's teacher trajectories start from the first-thought prefix."""
    variant = variant_of(variant)
    return variant == "agent-distill+ftp" or (variant == "agent-distill" and cfg.distill.first_thought_prefix)


class Config(Table):
    """The whole file: one field per table.

    Example:
        >>> cfg = parse_config({"teacher": {"model": "qwen2.5-coder-0.5b-instruct"},
        ...                     "student": {"model": "smollm2-135m-instruct"}, "sag": {"n": 3}})
        >>> cfg.sag.n, cfg.eval.benchmarks
        (3, ['math500'])
    """

    run: RunConfig = Field(default_factory=RunConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    teacher: ModelConfig = Field(default_factory=ModelConfig)
    student: ModelConfig = Field(default_factory=ModelConfig)
    trainset: TrainsetConfig = Field(default_factory=TrainsetConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    sft: dict = Field(default_factory=dict)  # validated against the SFT dataclass of agentdistill.optimizers
    eval: EvalConfig = Field(default_factory=EvalConfig)
    sag: SagConfig = Field(default_factory=SagConfig)
    _path: str = PrivateAttr("")  # where it was read from (not a table: `[path]` in a file is an unknown table)

    @property
    def path(self) -> str:
        return self._path

    def variants(self) -> list[str]:
        """The rows of the results table, in run order (each variant, then its SelfConsistency version)."""
        out = []
        for v in self.distill.variants:
            out.append(v)
            if self.sag.enabled and program_kind(v) in self.sag.programs and v in (self.sag.variants or [v]):
                out.append(v + SAG_SUFFIX)
        return out

    def sft_settings(self):
        """The `SFT` dataclass for [sft] (output_dir under [run] output_dir unless given)."""
        from agentdistill.optimizers.training import SFT

        return SFT(**self.sft)

    def to_dict(self) -> dict:
        return self.model_dump()


TABLES = list(Config.model_fields)


def _suggest(word: str, options, noun: str = "keys") -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    close = close or [o for o in options if word.startswith(o) or o.startswith(word)][:1]  # "evaluation" -> "eval"
    return f"; did you mean '{close[0]}'?" if close else f"; valid {noun}: {', '.join(options)}"


def _type_name(annotation) -> str:
    """How a config file's reader names a type: "an integer", "a list of strings", "'math' or 'factual'"."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return " or ".join(map(repr, typing.get_args(annotation)))
    if origin is list or annotation is list:
        (item,) = typing.get_args(annotation) or (object,)
        return "a list" + {int: " of integers", float: " of numbers", str: " of strings"}.get(item, "")
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", dict: "a table",
            type(None): "none"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(metadata) -> str:
    """">= 1" or "in (0, 1]" from a field's pydantic constraints."""
    low = next((("(", m.gt) for m in metadata if isinstance(m, annotated_types.Gt)), None) or \
        next((("[", m.ge) for m in metadata if isinstance(m, annotated_types.Ge)), None)
    high = next(((")", m.lt) for m in metadata if isinstance(m, annotated_types.Lt)), None) or \
        next((("]", m.le) for m in metadata if isinstance(m, annotated_types.Le)), None)
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    (bracket, bound), op = (low, {"(": ">", "[": ">="}) if low else (high, {")": "<", "]": "<="})
    return f"{op[bracket]} {bound}"


BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _problem(error: dict, model: type[BaseModel], values: dict, table: str | None, suggest=_suggest) -> str:
    """One pydantic error of `values` (the file's table `table`, or the whole file when None) as the user reads it."""
    loc = error["loc"]
    if table is None:  # the whole file: an unknown table, a table that is not one, or a problem inside a table
        if error["type"] == "extra_forbidden" and len(loc) == 1:
            return f"unknown table [{loc[0]}]{_suggest(loc[0], TABLES, 'tables')}"
        table, model, values = loc[0], model.model_fields[loc[0]].annotation, values[loc[0]]
        if len(loc) == 1:
            return f"[{table}] must be a table (a [{table}] section), got {values!r}"
        loc = loc[1:]
    key = loc[0]  # a list's item error (loc ("benchmarks", 1)) shows the whole list, as written
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}' in [{table}]{suggest(key, list(model.model_fields))}"
    field = model.model_fields[key]
    if error["type"] in BOUND_ERRORS:
        return f"[{table}] {key} must be {_bounds(field.metadata)}, got {values[key]!r}"
    return f"[{table}] {key} must be {_type_name(field.annotation)}, got {values[key]!r}"


@functools.cache
def _settings_model(settings_class) -> type[BaseModel]:
    """A pydantic model of a settings dataclass's fields, to check a table of them before the dataclass is built."""
    hints = typing.get_type_hints(settings_class)
    fields = {f.name: (hints.get(f.name, typing.Any), f.default if f.default is not dataclasses.MISSING
                       else Field(default_factory=f.default_factory) if f.default_factory is not dataclasses.MISSING
                       else ...) for f in dataclasses.fields(settings_class)}
    return create_model(f"{settings_class.__name__}Table", __base__=Table, **fields)


def _sft_problems(values: dict) -> list[str]:
    """[sft]'s problems: unknown keys (TRL's names get our name), wrong types, then the SFT dataclass's own checks."""
    try:
        from agentdistill.optimizers.training import SFT, suggest_setting
    except ImportError:  # optimizers not installed: keys are checked when the job builds the trainer
        return []
    model = _settings_model(SFT)
    try:
        model.model_validate(values, strict=True)
    except ValidationError as e:
        return [_problem(err, model, values, "sft", suggest_setting) for err in e.errors()]
    try:
        SFT(**values)
    except (ValueError, TypeError) as e:  # SFT.__post_init__: settings that do not go together
        return [f"[sft] {e}"]
    return []


def _check_values(cfg: Config) -> None:
    """What a table's types cannot say: keys that depend on each other and names other modules define."""
    from agentdistill.benchmarks.loaders import BenchmarkNotFoundError, canonical_name

    for role in ("teacher", "student"):
        for key in ("backend", "trained_backend"):
            if getattr(getattr(cfg, role), key) not in ("", "transformers", "llama.cpp"):
                raise ConfigError(f"[{role}] {key} must be \"transformers\" or \"llama.cpp\", got "
                                  f"{getattr(getattr(cfg, role), key)!r}")
        server = getattr(cfg, role).server
        if server:
            from agentdistill.lm.remote import SERVERS

            if server not in SERVERS:
                raise ConfigError(f"[{role}] server must be one of {', '.join(map(repr, SERVERS))}, got {server!r}")
            if not getattr(cfg, role).api_base:
                raise ConfigError(f"[{role}] server = {server!r} names the kind of server at api_base; set api_base "
                                  "(e.g. \"http://gpu:8000/v1\") or remove server")
        if not getattr(cfg, role).model.strip():
            raise ConfigError(f"[{role}] model is required, e.g. model = "
                              f"\"{'qwen2.5-coder-0.5b-instruct' if role == 'teacher' else 'smollm2-135m-instruct'}\"")
    if cfg.teacher.trained_backend:
        raise ConfigError("[teacher] trained_backend: only the student is trained; set it in [student]")
    for v in cfg.distill.variants:
        if v not in VARIANTS:
            raise ConfigError(f"[distill] variants: unknown variant {v!r}{_suggest(v, VARIANTS, 'variants')}")
    if not cfg.distill.variants:
        raise ConfigError(f"[distill] variants is empty; choose from {', '.join(VARIANTS)}")
    if {"agent-distill", "agent-distill+ftp"} <= set(cfg.distill.variants) and cfg.distill.first_thought_prefix:
        raise ConfigError("[distill] variants lists agent-distill and agent-distill+ftp, but first_thought_prefix = "
                          "true makes them the same run; set first_thought_prefix = false (agent-distill then "
                          "trains on trajectories without the prefix)")
    if not cfg.eval.benchmarks:
        raise ConfigError("[eval] benchmarks is empty; e.g. benchmarks = [\"math500\", \"gsm-hard\"]")
    try:
        cfg.eval.benchmarks = [b if b.endswith((".json", ".jsonl")) else canonical_name(b)
                               for b in cfg.eval.benchmarks]
    except BenchmarkNotFoundError as e:
        raise ConfigError(f"[eval] {e}") from None
    try:
        if not cfg.trainset.file:
            cfg.trainset.benchmark = canonical_name(cfg.trainset.benchmark)
    except BenchmarkNotFoundError as e:
        raise ConfigError(f"[trainset] {e}") from None
    if cfg.trainset.file and not Path(cfg.trainset.file).is_file():
        raise ConfigError(f"[trainset] file {cfg.trainset.file!r} does not exist (a relative path is read from the "
                          f"config file's folder, then from the folder you run in: {Path.cwd()})")
    if not cfg.sag.programs or set(cfg.sag.programs) - {"agent", "cot"}:
        raise ConfigError(f"[sag] programs must list 'agent' and/or 'cot', got {cfg.sag.programs!r}")
    if cfg.distill.seed_store and not Path(cfg.distill.seed_store).is_file():
        raise ConfigError(f"[distill] seed_store {cfg.distill.seed_store!r} does not exist (a relative path is read "
                          "from the config file's folder, then from the folder you run in); remove the key to "
                          "let the teacher generate everything")
    for v in cfg.sag.variants:
        if v not in cfg.distill.variants:
            raise ConfigError(f"[sag] variants: {v!r} is not in [distill] variants ({', '.join(cfg.distill.variants)})")
    if cfg.task.family == "factual" and not (cfg.retrieval.index or cfg.retrieval.url):
        raise ConfigError("[retrieval] index is required for factual tasks: build one with "
                          "`agentdistill index build ...` and set index = \"<name or folder>\" (or url = a server)")
    if cfg.retrieval.index and cfg.retrieval.url:
        raise ConfigError("[retrieval] set index or url, not both")
    from agentdistill.tools.retrieval.search_tool import MODES

    if cfg.retrieval.mode not in MODES:
        raise ConfigError(f"[retrieval] mode = {cfg.retrieval.mode!r}: choose one of {', '.join(MODES)}")


def parse_config(data: dict, path: str = "<config>") -> Config:
    """A validated Config from a parsed TOML document; a ConfigError names every problem of its tables (one a line)."""
    problems = []
    try:
        cfg = Config.model_validate(data, strict=True)
    except ValidationError as e:
        problems = [_problem(err, Config, data, None) for err in e.errors(include_url=False)]
    if isinstance(data.get("sft"), dict):
        problems += _sft_problems(data["sft"])
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    cfg._path = str(path)
    if Path(path).is_file():
        _resolve_inputs(cfg, Path(path).parent)
    _check_values(cfg)
    return cfg


def _from_folder(value: str, folder: Path) -> str:
    """A relative path that exists under `folder` (the config file's), else `value` unchanged (read from the
    working folder, as the shipped configs are from the repository root)."""
    if not value or Path(value).expanduser().is_absolute() or not (folder / value).exists():
        return value
    return str(folder / value)


def _resolve_inputs(cfg: Config, folder: Path) -> None:
    """Input paths of the config (question files, data folders, model folders, an index folder) relative to the
    config file's folder first. Outputs ([run] output_dir) stay relative to the working folder."""
    cfg.trainset.file = _from_folder(cfg.trainset.file, folder)
    cfg.trainset.data_dir = _from_folder(cfg.trainset.data_dir, folder)
    cfg.eval.data_dir = _from_folder(cfg.eval.data_dir, folder)
    cfg.eval.benchmarks = [_from_folder(b, folder) if b.endswith((".json", ".jsonl")) else b
                           for b in cfg.eval.benchmarks]
    cfg.retrieval.index = _from_folder(cfg.retrieval.index, folder)
    cfg.distill.seed_store = _from_folder(cfg.distill.seed_store, folder)
    for model in (cfg.teacher, cfg.student):
        model.model = _from_folder(model.model, folder)
        model.base_model = _from_folder(model.base_model, folder)


def load_config(path) -> Config:
    """Read and validate a TOML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (try configs/quickstart.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        return parse_config(data, path)
    except ConfigError as e:
        raise ConfigError("\n".join(f"{path}: {line}" for line in str(e).splitlines())) from None


def api_key(model: ModelConfig) -> str | None:
    return os.environ.get(model.api_key_env) if model.api_key_env else None
