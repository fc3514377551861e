"""`agentdistill eval`: evaluate a model as a code agent or a CoT solver (optionally with self-consistency).

    agentdistill eval --model smollm2-135m-instruct --program agent --benchmarks math500 gsm-hard --limit 20
    agentdistill eval --model runs/quickstart/agent-distill/sft/model --program agent --sag 8 --threads 2
    agentdistill eval --model openai/Qwen2.5-7B-Instruct --api-base http://gpu:8000/v1 --program cot ...

Writes <output-dir>/<benchmark>.jsonl (prediction, score, steps, tokens, time per example) and logs
accuracy/<benchmark> + accuracy/average to an MLflow run (store: $MLFLOW_TRACKING_URI or ./mlflow.db).
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a model/program on benchmarks, log to MLflow",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="shipped model name, HF folder / hub id, or provider/model")
    p.add_argument("--api-base", default="", help="OpenAI-compatible server for --model (vLLM, SGLang)")
    p.add_argument("--program", choices=["agent", "cot"], default="agent")
    p.add_argument("--task", choices=["math", "factual"], default=None,
                   help="task family (default: from the benchmarks)")
    p.add_argument("--index", default="", help="ColBERT index for factual agents' search tool")
    p.add_argument("--benchmarks", nargs="+", default=["math500"], metavar="NAME",
                   help="benchmark names (hotpotqa, bamboogle, musique, 2wikimultihopqa, math500, gsm-hard, aime, "
                        "olymmath) or question files")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="first N questions of each benchmark")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sag", type=int, default=0, metavar="N", help="wrap in SelfConsistency with N candidates")
    p.add_argument("--sag-temperature", type=float, default=0.4)
    p.add_argument("--max-steps", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--data-dir", default=None, help="benchmarks folder (default: $AGENTDISTILL_DATA / shared data)")
    p.add_argument("--judge-model", default="", help="optional LLM judge for factual sets (litellm model name)")
    p.add_argument("--output-dir", default="runs/eval")
    p.add_argument("--experiment", default="eval", help="MLflow experiment")
    p.add_argument("--run-name", default=None, help="MLflow run name / variant (default: model+program)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from agentdistill.benchmarks.evaluation import evaluate
    from agentdistill.benchmarks.loaders import (BenchmarkFormatError, BenchmarkNotFoundError, load_benchmark)
    from agentdistill.cli.config import Config, ModelConfig, RetrievalConfig, TaskConfig
    from agentdistill.cli.distill import make_lm, make_program, make_search
    from agentdistill.tracking import compare

    console = Console()
    if args.limit is not None and args.limit < 1 or args.threads < 1 or args.sag < 0:
        console.print("[red]error:[/red] --limit and --threads must be >= 1, --sag >= 0")
        return 2
    try:
        sets = {Path(b).stem if b.endswith((".json", ".jsonl")) else b:
                load_benchmark(b, split=args.split, limit=args.limit, data_dir=args.data_dir)
                for b in args.benchmarks}
    except (BenchmarkNotFoundError, BenchmarkFormatError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        return 2
    families = {exs[0].family for exs in sets.values()}
    family = args.task or (families.pop() if len(families) == 1 else None)
    if family is None:
        console.print("[red]error:[/red] the benchmarks mix math and factual sets; evaluate them separately or "
                      "pass --task")
        return 2
    if family == "factual" and args.program == "agent" and not args.index:
        console.print("[red]error:[/red] a factual agent needs a search index: --index <folder> "
                      "(build one with `agentdistill index build ...`)")
        return 2
    cfg = Config(task=TaskConfig(family=family, max_steps=args.max_steps, max_tokens=args.max_tokens),
                 retrieval=RetrievalConfig(index=args.index))
    search = make_search(cfg) if family == "factual" and args.program == "agent" else None
    program = make_program(args.program, cfg, search)
    program.set_lm(make_lm(ModelConfig(model=args.model, api_base=args.api_base), args.max_tokens))
    name = args.run_name or f"{Path(args.model).name}-{args.program}"
    if args.sag:
        from agentdistill.programs import SelfConsistency

        program = SelfConsistency(program, n=args.sag, temperature=args.sag_temperature)
        name = args.run_name or f"{name}+sag"
    judge_lm = None
    if args.judge_model:
        import dspy

        judge_lm = dspy.LM(args.judge_model)
    params = {"variant": name, "program": args.program, "student": args.model, "sag": bool(args.sag),
              "sag_n": args.sag or 1, "sag_temperature": args.sag_temperature if args.sag else 0.0,
              "benchmarks": ",".join(sets), "limit": args.limit or 0}
    res = evaluate(program, sets, num_threads=args.threads, output_dir=Path(args.output_dir) / name,
                   judge_lm=judge_lm, run_name=name, experiment=args.experiment, params=params, console=console)
    console.print(compare.results_table(compare.table_from_results({name: {**res.accuracy, "average": res.average}},
                                                                   args.experiment)))
    console.print(f"per-example results: {Path(args.output_dir) / name}/<benchmark>.jsonl")
    return 0
