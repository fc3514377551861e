"""`agentdistill distill CONFIG`: the main job - evaluate the student, distill it (agent and CoT), evaluate again.

    agentdistill distill configs/quickstart.toml            # ~35 min on a 2-core CPU with the shipped models
    agentdistill distill configs/quickstart.toml --dry-run  # validate the config and print what would run

For each variant in [distill] variants (student-cot, student-agent, cot-distill, agent-distill; teacher-cot and
teacher-agent add the untrained teacher as a reference row) and, for the kinds in [sag] programs, its
SelfConsistency version: evaluate on [eval] benchmarks, one MLflow run per variant in the [run] experiment
(compiles get their own "compile:<variant>" runs). At the end: rich tables of accuracy and of answered questions
(rows: variants, columns: benchmarks + average), also written to <output_dir>/results.{md,json}, and a chart.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import subprocess
import time
from pathlib import Path

from agentdistill.cli.config import (VARIANT_DOC, Config, ConfigError, ModelConfig, api_key, load_config,
                                     program_kind)


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="run the main job of a TOML config (distill + evaluate + compare)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="TOML config, e.g. configs/quickstart.toml")
    p.add_argument("--dry-run", action="store_true", help="validate the config and print what would run")
    p.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="run only these variants (overrides [distill] variants)")
    p.set_defaults(func=main)


# ----------------------------------------------------------------------------- building blocks (also used by eval)


def make_lm(model: ModelConfig, default_max_tokens: int = 512):
    """A dspy.LM for a [teacher]/[student] table: a model on a server (api_base), an API model, or the local engine.

    A server's LM continues the agent's partial assistant turns ("Thought:", the first-thought prefix) the way
    `server` says (agentdistill.lm.server_lm; default "vllm": vLLM's and SGLang's continue_final_message).
    """
    import dspy

    max_tokens = model.max_tokens or default_max_tokens
    prefix = model.model.split("/")[0] if "/" in model.model else ""
    if model.api_base and prefix not in _PROVIDERS - {"openai", "hosted_vllm"}:  # an OpenAI-compatible server
        from agentdistill.lm import server_lm

        return server_lm(model.model, model.api_base, server=model.server or "vllm", api_key=api_key(model),
                         temperature=model.temperature, max_tokens=max_tokens)
    if model.api_base or prefix in _PROVIDERS:  # another litellm provider (an API, ollama, ...)
        return dspy.LM(model.model, api_base=model.api_base or None, api_key=api_key(model),
                       temperature=model.temperature, max_tokens=max_tokens)
    import agentdistill

    backend = {"backend": model.backend} if model.backend else {}
    return agentdistill.local_lm(model.model, temperature=model.temperature, max_tokens=max_tokens, **backend)


_PROVIDERS = {"openai", "anthropic", "hosted_vllm", "together_ai", "groq", "gemini", "mistral", "ollama",
              "ollama_chat", "deepseek", "openrouter", "fireworks_ai", "azure", "bedrock", "vertex_ai"}


def make_search(cfg: Config):
    from agentdistill.tools.retrieval import ColBERTSearch

    if cfg.retrieval.url:
        return ColBERTSearch(url=cfg.retrieval.url, k=cfg.retrieval.k)
    return ColBERTSearch.load(cfg.retrieval.index, k=cfg.retrieval.k)


COT_MATH = ("Solve the math problem step by step. Give the final answer as a number or a simplified expression "
            "(e.g. 3/4, 2*sqrt(2)), without units.")
COT_FACTUAL = ("Answer the question step by step from what you know. Give the final answer as a short phrase "
               "(a name, date, number or yes/no), not a sentence.")


def make_program(kind: str, cfg: Config, search=None, max_tokens: int | None = None):
    """A fresh (uncompiled) program: kind "agent" (math_agent / factual_agent) or "cot" (ChainOfThoughtSolver)."""
    from agentdistill.programs import ChainOfThoughtSolver, factual_agent, math_agent

    max_tokens = max_tokens or cfg.task.max_tokens
    if kind == "agent":
        if cfg.task.family == "factual":
            return factual_agent(search, max_steps=cfg.task.max_steps, max_tokens=max_tokens)
        return math_agent(max_steps=cfg.task.max_steps, max_tokens=max_tokens)
    instructions = COT_FACTUAL if cfg.task.family == "factual" else COT_MATH
    return ChainOfThoughtSolver("question -> answer", instructions=instructions, max_tokens=max_tokens)


def _kwargs_for(cls, **candidates):
    """Only the keyword arguments `cls` accepts (the optimizers' constructors evolve independently)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return candidates
    return {k: v for k, v in candidates.items() if k in params}


def load_trainset(cfg: Config) -> list:
    from agentdistill.benchmarks import load_benchmark, load_file

    t = cfg.trainset
    if t.file:
        return load_file(t.file, family=cfg.task.family, limit=t.limit)
    return load_benchmark(t.benchmark, split=t.split, limit=t.limit, data_dir=t.data_dir or None)


def load_evalsets(cfg: Config) -> dict:
    from agentdistill.benchmarks import load_benchmark

    e = cfg.eval
    return {Path(b).stem if b.endswith((".json", ".jsonl")) else b:
            load_benchmark(b, split=e.split, limit=e.limit or None, data_dir=e.data_dir or None)
            for b in e.benchmarks}


# ----------------------------------------------------------------------------- the job


def is_distilled(variant: str) -> bool:
    """cot-distill / agent-distill are compiled (teacher trajectories + SFT); the other variants are only evaluated."""
    return variant.endswith("-distill")


def needs_teacher(cfg: Config) -> bool:
    """Any variant but the plain student needs the teacher LM (to distill from, or as the reference row)."""
    return any(not v.startswith("student-") for v in cfg.distill.variants)


def needs_trainset(cfg: Config) -> bool:
    return any(map(is_distilled, cfg.distill.variants))


def compile_variant(variant: str, cfg: Config, student_lm, teacher_lm, trainset, search, out: Path):
    """The program of a variant: the plain student or teacher, or the student compiled by AgentDistill / CoTDistill."""
    from agentdistill import optimizers
    from agentdistill.benchmarks import answer_correct

    kind = program_kind(variant)
    student = make_program(kind, cfg, search, max_tokens=cfg.student.max_tokens or None)
    student.set_lm(student_lm)
    if variant.startswith("student-"):
        return student
    teacher = make_program(kind, cfg, search, max_tokens=cfg.teacher.max_tokens or None)
    teacher.set_lm(teacher_lm)
    if variant.startswith("teacher-"):
        return teacher
    sft = dict(cfg.sft)
    sft.setdefault("output_dir", str(out / variant / "sft"))
    sft.setdefault("seed", cfg.run.seed)
    sft = optimizers.SFT(**sft)
    cls = optimizers.AgentDistill if variant == "agent-distill" else optimizers.CoTDistill
    # one store for every variant of the job: agent-distill's first-thought prefixes come from the same teacher CoT
    # answers that cot-distill trains on (same prompt, same key), so the teacher writes them once
    teleprompter = cls(**_kwargs_for(cls, metric=answer_correct, first_thought_prefix=cfg.distill.first_thought_prefix,
                                     sft=sft, num_threads=cfg.distill.teacher_threads,
                                     store=str(out / "teacher_store.jsonl"),
                                     cot_instructions=make_program("cot", cfg).instructions,
                                     student_model=cfg.student.base_model or None,
                                     backend=cfg.student.trained_backend or None))
    return teleprompter.compile(student, trainset=trainset, teacher=teacher)


def _commit() -> str:
    """The checkout's commit, for results files ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_job(cfg: Config, console=None) -> dict[str, dict[str, float]]:
    """Run every variant of `cfg`; returns {variant: {benchmark: accuracy, ..., "average": ...}}."""
    from rich.console import Console

    from agentdistill import tracking
    from agentdistill.benchmarks.evaluation import evaluate
    from agentdistill.programs import SelfConsistency
    from agentdistill.tracking import compare

    console = console or Console()
    job_start = time.monotonic()
    random.seed(cfg.run.seed)
    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    uri = tracking.configure(cfg.run.experiment, cfg.run.tracking_uri or None)
    evalsets = load_evalsets(cfg)
    trainset = load_trainset(cfg) if needs_trainset(cfg) else []
    search = make_search(cfg) if cfg.task.family == "factual" else None
    student_lm = make_lm(cfg.student, cfg.task.max_tokens)
    teacher_lm = make_lm(cfg.teacher, cfg.task.max_tokens) if needs_teacher(cfg) else None
    judge_lm = None
    if cfg.eval.judge_model:
        import dspy

        judge_lm = dspy.LM(cfg.eval.judge_model)
    console.print(f"[bold]agentdistill distill[/bold] {cfg.path}  ->  MLflow {uri}, experiment "
                  f"{cfg.run.experiment!r}, outputs in {out}/")

    results: dict[str, dict[str, float]] = {}
    answered: dict[str, dict[str, float]] = {}  # the same shape: fraction of questions with any answer
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    base_params = {"student": cfg.student.model, "teacher": cfg.teacher.model, "benchmarks": ",".join(evalsets),
                   "limit": cfg.eval.limit, "config": cfg.path, "task": cfg.task.family,
                   "max_steps": cfg.task.max_steps}
    rows = cfg.variants()  # each variant, then its +sag row where [sag] applies
    for variant in cfg.distill.variants:
        console.rule(f"[bold]{variant}[/bold]: {VARIANT_DOC[variant]}")
        start = time.perf_counter()
        if not is_distilled(variant):
            program = compile_variant(variant, cfg, student_lm, teacher_lm, trainset, search, out)
        else:
            # the optimizer logs its own settings (teacher, student, sft...) into this run: ours stay disjoint
            with tracking.start_run(f"compile:{variant}", experiment=cfg.run.experiment, kind="compile",
                                    params={"variant": variant, "config": cfg.path}):
                try:
                    program = compile_variant(variant, cfg, student_lm, teacher_lm, trainset, search, out)
                except Exception as e:  # e.g. no teacher trajectory passed the filter: the other variants go on
                    import mlflow

                    failures[variant] = f"{type(e).__name__}: {e}"
                    mlflow.set_tag("agentdistill.error", failures[variant][:5000])
                    console.print(f"[red]{variant} failed:[/red] {failures[variant]}", highlight=False)
                    continue
        timings[f"compile:{variant}"] = time.perf_counter() - start
        for sag in ([False, True] if f"{variant}+sag" in rows else [False]):
            name = f"{variant}+sag" if sag else variant
            prog = SelfConsistency(program, n=cfg.sag.n, temperature=cfg.sag.temperature,
                                   top_p=cfg.sag.top_p) if sag else program
            params = {**base_params, "variant": name, "program": program_kind(variant),
                      "evaluated": "teacher" if variant.startswith("teacher-") else "student",
                      "sag": sag, "sag_n": cfg.sag.n if sag else 1,
                      "sag_temperature": cfg.sag.temperature if sag else 0.0}
            start = time.perf_counter()
            with tracking.start_run(name, experiment=cfg.run.experiment, params=params):
                res = evaluate(prog, evalsets, num_threads=cfg.run.threads, output_dir=out / "eval" / name,
                               judge_lm=judge_lm, console=console)
                timings[name] = time.perf_counter() - start
                tracking.log_metrics({"eval_seconds": timings[name]})
            results[name] = {**res.accuracy, tracking.AVERAGE: res.average}
            answered[name] = {**res.answered, tracking.AVERAGE: res.answered_average}
            console.print(f"{name}: average accuracy {100 * res.average:.1f}% ({timings[name]:.0f} s)")

    if not results:
        raise RuntimeError(f"every variant failed: {failures}")
    table = compare.table_from_results(results, cfg.run.experiment)
    # "answered" shows what accuracy alone hides at CPU scale: a student that learned the agent format
    answered_table = compare.table_from_results(answered, cfg.run.experiment)
    console.print(compare.results_table(table, title=f"accuracy (%) - {cfg.run.experiment}"))
    console.print(compare.results_table(answered_table, title=f"answered (%) - {cfg.run.experiment}"))
    (out / "results.md").write_text(f"accuracy (%)\n\n{compare.to_markdown(table)}\n"
                                    f"answered (%): any answer at all (an agent reached final_answer)\n\n"
                                    f"{compare.to_markdown(answered_table)}")
    run = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "load_average": os.getloadavg(),
           "questions": {name: len(examples) for name, examples in evalsets.items()},
           "student": cfg.student.model, "teacher": cfg.teacher.model, "trainset": cfg.trainset.limit, "threads": cfg.run.threads, "teacher_threads": cfg.distill.teacher_threads,
           "wall_seconds": time.monotonic() - job_start}
    (out / "results.json").write_text(json.dumps({"results": results, "answered": answered, "seconds": timings,
                                                  "failed": failures, "run": run}, indent=2))
    chart = compare.bar_chart(table, out / "comparison.png")
    compare.log_comparison(table, chart, out / "results.md", tracking_uri=cfg.run.tracking_uri or None)
    for variant, error in failures.items():
        console.print(f"[red]not in the table: {variant}[/red] ({error})", highlight=False)
    console.print(f"results: {out / 'results.md'}, chart: {chart}; compare later with "
                  f"`agentdistill compare {cfg.run.experiment} [--metric answered]`")
    return results


def describe(cfg: Config, console) -> None:
    """What a run of `cfg` would do (the --dry-run output); loads the question files, not the models."""
    from rich.table import Table

    from agentdistill import tracking

    evalsets = load_evalsets(cfg)
    t = Table(title=f"agentdistill distill {cfg.path} (dry run)", show_header=False)
    t.add_column("what", style="cyan")
    t.add_column("value")
    t.add_row("task", f"{cfg.task.family}; agent max_steps={cfg.task.max_steps}, max_tokens={cfg.task.max_tokens}")
    t.add_row("student", cfg.student.model)
    t.add_row("teacher", (cfg.teacher.model + (f" @ {cfg.teacher.api_base}" if cfg.teacher.api_base else ""))
              if needs_teacher(cfg) else "(not needed)")
    if needs_trainset(cfg):
        train = load_trainset(cfg)
        src = cfg.trainset.file or f"{cfg.trainset.benchmark} ({cfg.trainset.split})"
        t.add_row("trainset", f"{len(train)} questions from {src}; first-thought prefix: "
                              f"{cfg.distill.first_thought_prefix}; teacher threads: {cfg.distill.teacher_threads}")
        sft = ", ".join(f"{k}={v}" for k, v in cfg.sft.items()) or "defaults"
        t.add_row("sft", f"{sft} (other fields: SFT defaults; checkpoints under {cfg.run.output_dir}/<variant>/sft)")
    if cfg.task.family == "factual":
        t.add_row("retrieval", f"index {cfg.retrieval.index}, k={cfg.retrieval.k}")
    t.add_row("evaluation", ", ".join(f"{b} ({len(v)})" for b, v in evalsets.items())
              + f"; threads {cfg.run.threads}")
    t.add_row("SAG", f"n={cfg.sag.n}, temperature={cfg.sag.temperature}, top_p={cfg.sag.top_p}, for "
              f"{' and '.join(cfg.sag.programs)} programs" if cfg.sag.enabled else "off")
    t.add_row("variants", "\n".join(f"{v}: {VARIANT_DOC[v.split('+')[0]]}" + (" + self-consistency" if "+" in v
                                    else "") for v in cfg.variants()))
    t.add_row("MLflow", f"{cfg.run.tracking_uri or tracking.default_tracking_uri()}, experiment "
                        f"{cfg.run.experiment!r}, one run per variant")
    t.add_row("outputs", cfg.run.output_dir)
    console.print(t)


def main(args) -> int:
    from rich.console import Console

    from agentdistill.benchmarks.loaders import BenchmarkFormatError, BenchmarkNotFoundError

    console = Console()
    try:
        cfg = load_config(args.config)
        if args.variants:
            from agentdistill.cli.config import VARIANTS

            bad = [v for v in args.variants if v not in VARIANTS]
            if bad:
                raise ConfigError(f"--variants: unknown {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
            cfg.distill.variants = list(args.variants)
        if args.dry_run:
            describe(cfg, console)
            console.print("[green]config OK[/green] (dry run: nothing was trained or evaluated)")
            return 0
    except (ConfigError, BenchmarkNotFoundError, BenchmarkFormatError) as e:
        console.print(f"[red]config error:[/red] {e}", highlight=False)
        return 2
    start = time.perf_counter()
    results = run_job(cfg, console)
    console.print(f"done in {(time.perf_counter() - start) / 60:.1f} min")
    return 0 if len(results) == len(cfg.variants()) else 1  # 1: some variant failed (named above the table)
