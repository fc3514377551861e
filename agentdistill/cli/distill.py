"""`agentdistill distill CONFIG`: the main job - evaluate the student, distill it (agent and CoT), evaluate again.

    agentdistill distill configs/quickstart.toml            # ~35 min on a 2-core CPU with the shipped models
    agentdistill distill configs/quickstart.toml --dry-run  # validate the config and print what would run

For each variant in [distill] variants (student-cot, student-agent, cot-distill, agent-distill; teacher-cot and
teacher-agent add the untrained teacher as a reference row) and, for the kinds in [sag] programs, its
SelfConsistency version: evaluate on [eval] benchmarks, one MLflow run per variant in the [run] experiment
(compiles get their own "compile:<variant>" runs). At the end: rich tables of accuracy and of answered questions
(rows: variants, columns: benchmarks + average), also written to <output_dir>/results.{md,json}, and a chart.

Before any work (and in --dry-run) the checks of cli/checks.py run: model names, the retrieval index, the output
folder, the tracking store, the question files; each problem is one line with its fix. A rerun of the same job (same
config, output folder and code) reuses the variants whose MLflow runs finished and continues the runs an interrupted
attempt (kill -9) left RUNNING; --fresh starts new runs. If the store stops answering mid-job, the job goes on
without MLflow and its results stay in <output_dir>.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

from agentdistill.cli.config import (VARIANT_DOC, Config, ConfigError, ModelConfig, api_key, is_distilled,
                                     load_config, program_kind, uses_prefix, variant_of)


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="run the main job of a TOML config (distill + evaluate + compare)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="TOML config, e.g. configs/quickstart.toml")
    p.add_argument("--dry-run", action="store_true", help="validate the config and print what would run")
    p.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="run only these variants (overrides [distill] variants)")
    p.add_argument("--stage", choices=["all", "teacher"], default="all",
                   help="teacher: only collect the teacher outputs of the distilled variants into the job's store "
                        "(resumable; a later full run reuses them), nothing trained or evaluated")
    p.add_argument("--regenerate-teacher", action="store_true",
                   help="do not merge [distill] seed_store: the teacher generates what the job's store lacks (delete "
                        "<output_dir>/teacher_store.jsonl first if an earlier run merged the committed set)")
    p.add_argument("--fresh", action="store_true",
                   help="new MLflow runs for everything (default: a rerun of the same job reuses the variants that "
                        "finished and continues the runs an interrupted attempt left)")
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
    if model.api_base and prefix not in PROVIDERS - {"openai", "hosted_vllm"}:  # an OpenAI-compatible server
        from agentdistill.lm import server_lm

        return server_lm(model.model, model.api_base, server=model.server or "vllm", api_key=api_key(model),
                         temperature=model.temperature, max_tokens=max_tokens)
    if model.api_base or prefix in PROVIDERS:  # another litellm provider (an API, ollama, ...)
        return dspy.LM(model.model, api_base=model.api_base or None, api_key=api_key(model),
                       temperature=model.temperature, max_tokens=max_tokens)
    import agentdistill

    backend = {"backend": model.backend} if model.backend else {}
    return agentdistill.local_lm(model.model, temperature=model.temperature, max_tokens=max_tokens, **backend)


PROVIDERS = {"openai", "anthropic", "hosted_vllm", "together_ai", "groq", "gemini", "mistral", "ollama",
             "ollama_chat", "deepseek", "openrouter", "fireworks_ai", "azure", "bedrock", "vertex_ai"}


def make_search(cfg: Config):
    from agentdistill.tools.retrieval import open_search

    if cfg.retrieval.url:
        return open_search(url=cfg.retrieval.url, k=cfg.retrieval.k)
    return open_search(cfg.retrieval.index, mode=cfg.retrieval.mode, k=cfg.retrieval.k)


def make_program(kind: str, cfg: Config, search=None, max_tokens: int | None = None):
    """A fresh (uncompiled) program of the config's task family: kind "agent" or "cot" (programs.ready.preset)."""
    from agentdistill.programs.ready import preset

    return preset(kind, cfg.task.family, search, max_steps=cfg.task.max_steps,
                  max_tokens=max_tokens or cfg.task.max_tokens)


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


def needs_teacher(cfg: Config) -> bool:
    """Any variant but the plain student needs the teacher LM (to distill from, or as the reference row)."""
    return any(not v.startswith("student-") for v in cfg.distill.variants)


def needs_trainset(cfg: Config) -> bool:
    return any(map(is_distilled, cfg.distill.variants))


def compile_variant(variant: str, cfg: Config, student_lm, teacher_lm, trainset, search, out: Path,
                    track: bool = True):
    """The program of a variant: the plain student or teacher, or the student compiled by AgentDistill / CoTDistill
    (track: the optimizer logs into the active MLflow run)."""
    kind = program_kind(variant)
    student = make_program(kind, cfg, search, max_tokens=cfg.student.max_tokens or None)
    student.set_lm(student_lm)
    if variant.startswith("student-"):
        return student
    teacher = make_program(kind, cfg, search, max_tokens=cfg.teacher.max_tokens or None)
    teacher.set_lm(teacher_lm)
    if variant.startswith("teacher-"):
        return teacher
    return teleprompter_for(variant, cfg, out, track).compile(student, trainset=trainset, teacher=teacher)


def teacher_store_path(out: Path) -> Path:
    """The job's one teacher store (every distilled variant, the teacher stage and the seed store's merge)."""
    return out / "teacher_store.jsonl"


def teleprompter_for(variant: str, cfg: Config, out: Path, track: bool = True):
    """The AgentDistill / CoTDistill of a distilled variant, on the job's one teacher store."""
    from agentdistill import optimizers
    from agentdistill.benchmarks import answer_correct

    sft = dict(cfg.sft)
    sft.setdefault("output_dir", str(out / variant / "sft"))
    sft.setdefault("seed", cfg.run.seed)
    sft = optimizers.SFT(**sft)
    common = dict(metric=answer_correct, sft=sft, num_threads=cfg.distill.teacher_threads,
                  store=str(teacher_store_path(out)), student_model=cfg.student.base_model or None,
                  backend=cfg.student.trained_backend or None, track=track)
    if program_kind(variant) == "cot":
        return optimizers.CoTDistill(**common)
    # one store for every variant of the job: agent-distill's first-thought prefixes come from the same teacher CoT
    # answers that cot-distill trains on (same prompt, same key), so the teacher writes them once
    return optimizers.AgentDistill(**common, first_thought_prefix=uses_prefix(variant, cfg),
                                   cot_instructions=make_program("cot", cfg).instructions)


def _commit() -> str:
    """The checkout's commit, for results files ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def job_key(cfg: Config, fresh: bool = False) -> str:
    """What makes two runs of a config "the same job" (tracking.lifecycle): its settings, its output folder and the
    code; `fresh` makes a new job (new MLflow runs, nothing reused)."""
    from agentdistill.tracking import lifecycle

    settings = {"config": cfg.to_dict(), "output_dir": str(Path(cfg.run.output_dir).resolve()),
                "code": lifecycle.code_version()}
    if fresh:
        settings["fresh"] = time.time_ns()
    return lifecycle.job_key(settings)


def run_params(cfg: Config, evalsets: dict) -> dict:
    """The settings that shape every variant's result, logged to each run (the UI's run comparison lines them up)."""
    return {"student": cfg.student.model, "teacher": cfg.teacher.model, "benchmarks": ",".join(evalsets),
            "limit": cfg.eval.limit, "split": cfg.eval.split, "config": cfg.path, "task": cfg.task.family,
            "max_steps": cfg.task.max_steps, "max_tokens": cfg.task.max_tokens,
            "student_max_tokens": cfg.student.max_tokens or cfg.task.max_tokens,
            "teacher_max_tokens": cfg.teacher.max_tokens or cfg.task.max_tokens, "threads": cfg.run.threads,
            "seed": cfg.run.seed}


def config_artifacts(cfg: Config) -> tuple[dict, dict]:
    """The config as artifacts of a run: the TOML file as written ({path: folder}) and as read ({name: dict})."""
    files = {cfg.path: "config"} if cfg.path and Path(cfg.path).is_file() else {}
    return files, {"config/config.json": cfg.to_dict()}


def run_job(cfg: Config, console=None, fresh: bool = False) -> dict[str, dict[str, float]]:
    """Run every variant of `cfg`; returns {variant: {benchmark: accuracy, ..., "average": ...}}.

    A rerun of the same job (job_key) reuses the variants whose MLflow runs finished and continues the others' runs
    (a kill -9 leaves them RUNNING); `fresh` starts over. If the store goes away mid-job, the job goes on without
    MLflow and says what was not logged.
    """
    from rich.console import Console
    from rich.markup import escape

    from agentdistill import tracking
    from agentdistill.benchmarks.evaluation import evaluate
    from agentdistill.cli.errors import print_warning
    from agentdistill.programs import SelfConsistency
    from agentdistill.tracking import compare, lifecycle
    from agentdistill.tracking.jobs import JobRuns

    console = console or Console()
    job_start = time.monotonic()
    random.seed(cfg.run.seed)
    out = Path(cfg.run.output_dir)
    uri = cfg.run.tracking_uri or tracking.default_tracking_uri()
    runs = JobRuns(cfg.run.experiment, uri, job_key(cfg, fresh))  # refuses a job another live process runs
    out.mkdir(parents=True, exist_ok=True)
    if needs_trainset(cfg):
        from agentdistill.cli.teacher_stage import seed_teacher_store

        seed_teacher_store(cfg, out, console)
    evalsets = load_evalsets(cfg)
    trainset = load_trainset(cfg) if needs_trainset(cfg) else []
    search = make_search(cfg) if cfg.task.family == "factual" else None
    student_lm = make_lm(cfg.student, cfg.task.max_tokens)
    teacher_lm = make_lm(cfg.teacher, cfg.task.max_tokens) if needs_teacher(cfg) else None
    judge_lm = None
    if cfg.eval.judge_model:
        import dspy

        judge_lm = dspy.LM(cfg.eval.judge_model)
    console.print(f"[bold]agentdistill distill[/bold] {escape(cfg.path)}  ->  MLflow {escape(uri)}, experiment "
                  f"{escape(repr(cfg.run.experiment))}, outputs in {escape(str(out))}/", highlight=False)

    results: dict[str, dict[str, float]] = {}
    answered: dict[str, dict[str, float]] = {}  # the same shape: fraction of questions with any answer
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    base_params = run_params(cfg, evalsets)
    files, dicts = config_artifacts(cfg)
    rows = cfg.variants()  # each variant, then its +sag row where [sag] applies

    def reuse(name: str, run) -> None:
        m = run.data.metrics
        results[name] = {**{b: m[tracking.metric_key(b)] for b in evalsets if tracking.metric_key(b) in m},
                         tracking.AVERAGE: m.get(tracking.metric_key(tracking.AVERAGE), 0.0)}
        answered[name] = {**{b: m[tracking.metric_key(b, tracking.ANSWERED)] for b in evalsets
                             if tracking.metric_key(b, tracking.ANSWERED) in m},
                          tracking.AVERAGE: m.get(tracking.metric_key(tracking.AVERAGE, tracking.ANSWERED), 0.0)}
        timings[name] = m.get("eval_seconds", 0.0)
        console.print(f"{escape(name)}: finished in an earlier run of this job (MLflow run {run.info.run_id}): "
                      f"average accuracy {100 * results[name][tracking.AVERAGE]:.1f}%; not evaluated again "
                      "(--fresh evaluates everything again)", highlight=False)

    def compile_program(variant: str):
        """The variant's program; None (and failures[variant]) when its compile failed."""
        name = f"compile:{variant}"
        build = lambda track: compile_variant(variant, cfg, student_lm, teacher_lm, trainset, search, out,  # noqa
                                              track=track)
        if not is_distilled(variant):
            return build(False)
        if runs.finished(name) is not None:  # logged already: rebuilt from the teacher store and checkpoints
            console.print(f"{escape(name)}: logged in an earlier run of this job (MLflow run "
                          f"{runs.finished(name).info.run_id}); rebuilding the program without logging it again",
                          highlight=False)
            return build(False)
        program = error = None
        # the optimizer logs its own settings (teacher, student, sft...) into this run: ours stay disjoint
        with runs.run(name, kind="compile", params={"variant": variant, "config": cfg.path}) as run:
            try:
                program = build(run is not None)
            except Exception as e:  # e.g. no teacher trajectory passed the filter: the other variants go on
                if run is not None and runs.note_lost(e):
                    raise  # the store went away: runs.run records it
                error = f"{type(e).__name__}: {e}"
                runs.log(tags={lifecycle.ERROR_TAG: error[:5000]})
        if program is None and error is None:  # the store went away during the compile
            print_warning(console, f"{runs.lost}; compiling {variant} again without MLflow (the teacher store and "
                                   "the checkpoints resume)")
            program = build(False)
        if error is not None:
            failures[variant] = error
            console.print(f"[red]{escape(variant)} failed:[/red] {escape(error)}", highlight=False)
        return program

    for variant in cfg.distill.variants:
        console.rule(f"[bold]{variant}[/bold]: {VARIANT_DOC[variant]}")
        names = [name for name in rows if variant_of(name) == variant]
        if all(runs.finished(name) is not None for name in names):
            for name in names:
                reuse(name, runs.finished(name))
            continue
        start = time.perf_counter()
        program = compile_program(variant)
        if program is None:
            continue
        timings[f"compile:{variant}"] = time.perf_counter() - start
        for name in names:
            if runs.finished(name) is not None:
                reuse(name, runs.finished(name))
                continue
            sag = name.endswith("+sag")
            prog = SelfConsistency(program, n=cfg.sag.n, temperature=cfg.sag.temperature,
                                   top_p=cfg.sag.top_p) if sag else program
            params = {**base_params, "variant": name, "program": program_kind(variant),
                      "evaluated": "teacher" if variant.startswith("teacher-") else "student",
                      "sag": sag, "sag_n": cfg.sag.n if sag else 1,
                      "sag_temperature": cfg.sag.temperature if sag else 0.0,
                      "sag_top_p": cfg.sag.top_p if sag else 0.0}
            earlier = runs.continued(name)
            if earlier is not None and runs.lost is None:
                console.print(f"{escape(name)}: continuing MLflow run {earlier.info.run_id} (an earlier attempt of "
                              f"this job left it {earlier.info.status})", highlight=False)
            res = None
            with runs.run(name, params=params) as run:  # opened first: the run's duration is the evaluation's
                start = time.perf_counter()
                res = evaluate(prog, evalsets, num_threads=cfg.run.threads, output_dir=out / "eval" / name,
                               judge_lm=judge_lm, console=console, log_to_mlflow=False)
                timings[name] = time.perf_counter() - start
                # a distilled student's metrics link to the model its compile logged (MLflow's model view)
                model_id = tracking.find_student_model(program, run.info.experiment_id) \
                    if run is not None and is_distilled(variant) else None
                runs.log(metrics={**res.metrics(), "eval_seconds": timings[name]}, dicts=dicts,
                         artifacts={**files, **{path: "eval" for path in res.files.values()}},
                         eval_rows=res.rows(), model_id=model_id)
            results[name] = {**res.accuracy, tracking.AVERAGE: res.average}
            answered[name] = {**res.answered, tracking.AVERAGE: res.answered_average}
            console.print(f"{escape(name)}: average accuracy {100 * res.average:.1f}% ({timings[name]:.0f} s)",
                          highlight=False)

    if not results:
        from agentdistill.cli.errors import UserError

        raise UserError("every variant failed (see above): " + "; ".join(f"{v}: {e}" for v, e in failures.items()))
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
           "student": cfg.student.model, "teacher": cfg.teacher.model, "trainset": cfg.trainset.limit,
           "threads": cfg.run.threads, "teacher_threads": cfg.distill.teacher_threads,
           "wall_seconds": time.monotonic() - job_start}
    (out / "results.json").write_text(json.dumps({"results": results, "answered": answered, "seconds": timings,
                                                  "failed": failures, "run": run}, indent=2))
    write_job_summary(cfg, out, evalsets, [name for name in rows if name in results], console)
    chart = compare.bar_chart(table, out / "comparison.png")
    compare.log_comparison(table, chart, out / "results.md", runs=runs)
    for name in runs.close_leftovers():
        console.print(f"MLflow run {escape(name)} of an interrupted attempt was not continued: marked FAILED",
                      highlight=False)
    for variant, error in failures.items():
        console.print(f"[red]not in the table: {escape(variant)}[/red] ({escape(error)})", highlight=False)
    console.print(f"results: {escape(str(out / 'results.md'))}, {escape(str(out / 'summary.json'))}, chart: "
                  f"{escape(str(chart))}; compare later with "
                  f"`agentdistill compare {escape(cfg.run.experiment)} {escape('[--metric answered]')}`",
                  highlight=False)
    if runs.lost is not None:
        print_warning(console, f"{runs.lost}: what ran after that is not in MLflow; the results are in {out}/ "
                               "(results.md, results.json, eval/<variant>/<benchmark>.jsonl)")
    return results


def write_job_summary(cfg: Config, out: Path, evalsets: dict, rows: list[str], console) -> dict:
    """<output_dir>/summary.json (and [run] publish_dir/summary.json): every cell with n and its 95% interval, the
    paired comparisons, the diagnostics (agentdistill.benchmarks.summary); prints the paired comparisons."""
    from rich.markup import escape

    from agentdistill.benchmarks.summary import summarize, write_summary

    rows = [r for r in rows if any((out / "eval" / r).glob("*.jsonl"))]  # a row reused from MLflow alone has none
    if not rows:
        return {}
    benchmarks = [b for b in evalsets if any((out / "eval" / r / f"{b}.jsonl").is_file() for r in rows)]
    summary = summarize(out, benchmarks=benchmarks, rows=rows, settings=cfg.to_dict(), commit=_commit(),
                        teacher=cfg.teacher.model, student=cfg.student.model,
                        extra={"experiment": cfg.run.experiment, "load_average": list(os.getloadavg())})
    write_summary(summary, out / "summary.json")
    if cfg.run.publish_dir:
        write_summary(summary, Path(cfg.run.publish_dir) / "summary.json")
    for pair, d in summary["paired"].items():
        console.print(f"{escape(pair)}: {100 * d['diff']:+.1f} points (95% CI {100 * d['ci_low']:+.1f} to "
                      f"{100 * d['ci_high']:+.1f}, {d['n']} paired questions)"
                      + ("" if d["ci_low"] > 0 or d["ci_high"] < 0 else ": the interval includes 0"),
                      highlight=False)
    return summary


def describe(cfg: Config, console) -> None:
    """What a run of `cfg` would do (the --dry-run output); loads the question files, not the models."""
    from rich.markup import escape
    from rich.table import Table

    from agentdistill import tracking

    evalsets = load_evalsets(cfg)
    t = Table(title=escape(f"agentdistill distill {cfg.path} (dry run)"), show_header=False)
    t.add_column("what", style="cyan")
    t.add_column("value")

    def row(what: str, value: str) -> None:  # values are text (paths, model names, [sft] lists), never markup
        t.add_row(what, escape(value))

    row("task", f"{cfg.task.family}; agent max_steps={cfg.task.max_steps}, max_tokens={cfg.task.max_tokens}")
    row("student", cfg.student.model)
    row("teacher", (cfg.teacher.model + (f" @ {cfg.teacher.api_base}" if cfg.teacher.api_base else ""))
        if needs_teacher(cfg) else "(not needed)")
    if needs_trainset(cfg):
        train = load_trainset(cfg)
        src = cfg.trainset.file or f"{cfg.trainset.benchmark} ({cfg.trainset.split})"
        row("trainset", f"{len(train)} questions from {src}; first-thought prefix: "
                        f"{cfg.distill.first_thought_prefix}; teacher threads: {cfg.distill.teacher_threads}")
        if cfg.distill.seed_store:
            row("teacher store", f"{cfg.distill.seed_store} merged into {cfg.run.output_dir}/teacher_store.jsonl first "
                                 "(committed teacher outputs: the teacher is asked only for what it lacks; "
                                 "--regenerate-teacher skips the merge)")
        sft = ", ".join(f"{k}={v}" for k, v in cfg.sft.items()) or "defaults"
        row("sft", f"{sft} (other fields: SFT defaults; checkpoints under {cfg.run.output_dir}/<variant>/sft)")
    if cfg.task.family == "factual":
        row("retrieval", f"index {cfg.retrieval.index or cfg.retrieval.url}, k={cfg.retrieval.k}")
    row("evaluation", ", ".join(f"{b} ({len(v)})" for b, v in evalsets.items()) + f"; threads {cfg.run.threads}")
    row("SAG", f"n={cfg.sag.n}, temperature={cfg.sag.temperature}, top_p={cfg.sag.top_p}, for "
        f"{' and '.join(cfg.sag.programs)} programs" if cfg.sag.enabled else "off")
    row("variants", "\n".join(f"{v}: {VARIANT_DOC[variant_of(v)]}" + (" + self-consistency" if v != variant_of(v) else "")
                              for v in cfg.variants()))
    row("MLflow", f"{cfg.run.tracking_uri or tracking.default_tracking_uri()}, experiment {cfg.run.experiment!r}, "
                  "one run per variant (a rerun of the same job continues its runs)")
    row("outputs", str(Path(cfg.run.output_dir).absolute()))
    console.print(t)


def main(args) -> int:
    """Config errors and the checks' problems are raised for cli.main to print (one message, no traceback)."""
    from rich.console import Console

    from agentdistill.cli import checks
    from agentdistill.cli.config import VARIANTS
    from agentdistill.cli.errors import Problems

    console = Console()
    cfg = load_config(args.config)
    if args.variants:
        bad = [v for v in args.variants if v not in VARIANTS]
        if bad:
            raise ConfigError(f"--variants: unknown {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
        cfg.distill.variants = list(args.variants)
    if args.regenerate_teacher:
        cfg.distill.seed_store = ""
    problems = checks.job_problems(cfg)  # what the run would fail on, before any work (the dry run's checks)
    if problems:
        raise Problems(problems, " found by the dry run" if args.dry_run else ", so the job did not start")
    if args.dry_run:
        describe(cfg, console)
        console.print("[green]config OK[/green] (dry run: nothing was trained or evaluated; the models, index, "
                      "output folder, tracking store and question files were checked)")
        return 0
    start = time.perf_counter()
    if args.stage == "teacher":
        from agentdistill.cli.teacher_stage import generate_teacher_outputs

        generate_teacher_outputs(cfg, console)
        console.print(f"teacher stage done in {(time.perf_counter() - start) / 60:.1f} min")
        return 0
    results = run_job(cfg, console, fresh=args.fresh)
    console.print(f"done in {(time.perf_counter() - start) / 60:.1f} min")
    return 0 if len(results) == len(cfg.variants()) else 1  # 1: some variant failed (named above the table)
