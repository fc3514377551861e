"""`agentdistill eval`: evaluate a model as a code agent or a CoT solver (optionally with self-consistency).

    agentdistill eval --model smollm2-135m-instruct --program agent --benchmarks math500 gsm-hard --limit 20
    agentdistill eval --model runs/quickstart/agent-distill/sft/model --program agent --sag 8 --threads 2
    agentdistill eval --model openai/Qwen2.5-7B-Instruct --api-base http://gpu:8000/v1 --program cot ...

Writes <output-dir>/<run name>/<benchmark>.jsonl (prediction, score, steps, tokens, time per example) and
results.json, and logs accuracy/<benchmark> + accuracy/average, every setting and eval_seconds to an MLflow run
(store: $MLFLOW_TRACKING_URI or ./mlflow.db) opened before the evaluation. The model name, index, output folder and
store are checked first; a store that stops answering mid-run costs the logging, not the results (exit status 1).
"""

from __future__ import annotations


GENERIC_FOLDERS = {"model", "adapter", "merged", "final", "checkpoint"}  # names a trained folder often has


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a model/program on benchmarks, log to MLflow",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True,
                   help="shipped model name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct), Hugging Face "
                        "folder / hub id, or provider/model (with --api-base)")
    p.add_argument("--api-base", default="", help="OpenAI-compatible server for --model (vLLM, SGLang)")
    p.add_argument("--program", choices=["agent", "cot"], default="agent",
                   help="agent: the code agent (Python tool, + search for factual sets); cot: chain of thought "
                        "(default: %(default)s)")
    p.add_argument("--task", choices=["math", "factual"], default=None,
                   help="task family (default: from the benchmarks)")
    p.add_argument("--index", default="", help="ColBERT index for factual agents' search tool")
    p.add_argument("--benchmarks", nargs="+", default=["math500"], metavar="NAME",
                   help="benchmark names (hotpotqa, bamboogle, musique, 2wikimultihopqa, math500, gsm-hard, aime, "
                        "olymmath) or question files (default: %(default)s)")
    p.add_argument("--split", default="test", help="split of the named benchmarks (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="first N questions of each benchmark (default: all)")
    p.add_argument("--threads", type=int, default=1, help="questions evaluated at once (default: %(default)s)")
    p.add_argument("--sag", type=int, default=0, metavar="N",
                   help="wrap in SelfConsistency with N candidates per step/answer (default: %(default)s, off)")
    p.add_argument("--sag-temperature", type=float, default=0.4,
                   help="sampling temperature of the SelfConsistency candidates (default: %(default)s)")
    p.add_argument("--sag-top-p", type=float, default=0.8,
                   help="nucleus sampling of the SelfConsistency candidates (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=5, help="agent steps per question (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=512,
                   help="tokens per LM call (agent step / CoT answer) (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="benchmarks folder (default: $AGENTDISTILL_DATA / shared data)")
    p.add_argument("--judge-model", default="", help="optional LLM judge for factual sets (litellm model name)")
    p.add_argument("--output-dir", default="runs/eval",
                   help="per-example results go to <output-dir>/<run name>/ (default: %(default)s)")
    p.add_argument("--experiment", default="eval", help="MLflow experiment (default: %(default)s)")
    p.add_argument("--run-name", default=None,
                   help="MLflow run name / variant (default: program[+sagN]-model, e.g. "
                        "agent+sag8-smollm2-135m-instruct)")
    p.set_defaults(func=main)


def model_label(model: str) -> str:
    """A short name for a model: a shipped name or hub id's last part; a trained folder with its parent's name."""
    from pathlib import Path

    path = Path(model)
    if path.name.lower() in GENERIC_FOLDERS and path.parent.name:
        return f"{path.parent.name}-{path.name}"
    return path.name or model


def default_run_name(model: str, program: str, sag: int) -> str:
    """program (+sagN) first, then the model: two variants differ in the first 20 characters (the MLflow UI's runs
    list cuts names there)."""
    return f"{program}{f'+sag{sag}' if sag else ''}-{model_label(model)}"


def main(args) -> int:
    import json
    import time
    from pathlib import Path

    from rich.console import Console

    from agentdistill import tracking
    from agentdistill.benchmarks.evaluation import evaluate
    from agentdistill.benchmarks.loaders import load_benchmark
    from agentdistill.cli import checks
    from agentdistill.cli.config import Config, ModelConfig, RetrievalConfig, TaskConfig
    from agentdistill.cli.distill import make_lm, make_program, make_search
    from agentdistill.cli.errors import Problems, UserError, print_warning
    from agentdistill.tracking import compare, lifecycle
    from agentdistill.tracking.jobs import JobRuns

    console = Console()
    if args.limit is not None and args.limit < 1 or args.threads < 1 or args.sag < 0 or args.max_steps < 1:
        raise UserError("--limit, --threads and --max-steps must be >= 1, --sag >= 0")
    if not 0 < args.sag_top_p <= 1:
        raise UserError(f"--sag-top-p must be in (0, 1], got {args.sag_top_p}")
    sets = {Path(b).stem if b.endswith((".json", ".jsonl")) else b:
            load_benchmark(b, split=args.split, limit=args.limit, data_dir=args.data_dir)
            for b in args.benchmarks}  # BenchmarkNotFoundError / BenchmarkFormatError: printed by cli.main
    families = {exs[0].family for exs in sets.values()}
    family = args.task or (families.pop() if len(families) == 1 else None)
    if family is None:
        raise UserError("the benchmarks mix math and factual sets; evaluate them separately or pass --task")
    agent_searches = family == "factual" and args.program == "agent"
    if agent_searches and not args.index:
        raise UserError("a factual agent needs a search index: --index <folder> "
                        "(build one with `agentdistill index build ...`)")
    name = args.run_name or default_run_name(args.model, args.program, args.sag)
    out = Path(args.output_dir) / name
    problems = [checks.model_problem(args.model, "--model", api_base=args.api_base, option="--api-base"),
                checks.index_problem(args.index, "--index") if agent_searches else None,
                checks.folder_problem(out, "--output-dir"), checks.store_problem(None)]
    if any(problems):  # found before the model is loaded and before any question is asked
        raise Problems([p for p in problems if p], ", so the evaluation did not start")

    cfg = Config(task=TaskConfig(family=family, max_steps=args.max_steps, max_tokens=args.max_tokens),
                 retrieval=RetrievalConfig(index=args.index))
    search = make_search(cfg) if agent_searches else None
    program = make_program(args.program, cfg, search)
    program.set_lm(make_lm(ModelConfig(model=args.model, api_base=args.api_base), args.max_tokens))
    if args.sag:
        from agentdistill.programs import SelfConsistency

        program = SelfConsistency(program, n=args.sag, temperature=args.sag_temperature, top_p=args.sag_top_p)
    judge_lm = None
    if args.judge_model:
        import dspy

        judge_lm = dspy.LM(args.judge_model)
    # every setting that shapes the result, for the MLflow UI's run comparison
    params = {"variant": name, "program": args.program, "student": args.model, "api_base": args.api_base,
              "task": family, "benchmarks": ",".join(sets), "limit": args.limit or 0, "split": args.split,
              "max_steps": args.max_steps, "max_tokens": args.max_tokens, "threads": args.threads,
              "sag": bool(args.sag), "sag_n": args.sag or 1,
              "sag_temperature": args.sag_temperature if args.sag else 0.0,
              "sag_top_p": args.sag_top_p if args.sag else 0.0, "index": args.index, "judge_model": args.judge_model}
    uri = tracking.default_tracking_uri()
    job = lifecycle.job_key({"eval": params, "output": str(out.resolve()), "code": lifecycle.code_version()})
    runs = JobRuns(args.experiment, uri, job, reopen_finished=False)  # a rerun after a crash continues its run
    with runs.run(name, params=params):  # opened first: the run's duration is the evaluation's
        start = time.perf_counter()
        res = evaluate(program, sets, num_threads=args.threads, output_dir=out, judge_lm=judge_lm, console=console,
                       log_to_mlflow=False)
        seconds = time.perf_counter() - start
        summary = {"accuracy": res.accuracy, "average": res.average, "answered": res.answered, "f1": res.f1,
                   "judge_accuracy": res.judge_accuracy, "eval_seconds": seconds, "params": params}
        (out / "results.json").write_text(json.dumps(summary, indent=2))  # on disk, whatever the store does
        runs.log(metrics={**res.metrics(), "eval_seconds": seconds},
                 artifacts={**{path: "eval" for path in res.files.values()}, str(out / "results.json"): None},
                 dicts={"eval_args.json": {k: v for k, v in vars(args).items() if k != "func"}})
    console.print(compare.results_table(compare.table_from_results({name: {**res.accuracy, "average": res.average}},
                                                                   args.experiment)))
    console.print(f"per-example results: {out}/<benchmark>.jsonl", highlight=False, markup=False)
    if runs.lost is not None:
        print_warning(console, f"{runs.lost}: these results were not logged to MLflow; they are in {out}/ "
                               "(results.json, <benchmark>.jsonl)")
        return 1
    return 0
