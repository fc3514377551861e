"""Local inference benchmark: every ratio against a baseline measured in the same run, interleaved.

    .venv/bin/python bench/bench_engine.py                          # all five, ~30-60 min on 2 shared cores
    .venv/bin/python bench/bench_engine.py --only 1,2,3             # the engine ratios only (~5 min)
    .venv/bin/python bench/bench_engine.py --checkpoint runs/quickstart/student-.../model --eval-questions 40

The compiled student is a fine-tuned folder on the llama.cpp engine (its GGUF export); without --checkpoint the
shipped student's own folder stands in (same architecture and size, so the same speed as any fine-tune of it).

| ratio | goal |
|---|---|
| 1. compiled student tokens/s: project engine vs raw llama-cpp-python on the same GGUF (the limit) | >= 0.9 |
| 2. compiled student tokens/s: the new default (llama.cpp, GGUF export) vs the transformers engine | >= 5x |
| 3. SAG n=8: one batched call vs 8 sequential calls (tokens/s of all candidates) | >= 3x |
| 4. teacher agent: 4 concurrent tasks vs 1 at a time (trajectories/minute) | >= 2x |
| 5. agent evaluation of the student: new default (llama.cpp, 4 threads of requests) vs transformers, 1 thread | >= 4x |

Timings alternate baseline/new and report medians (the machine is shared); the load average is printed with every
ratio. `--json FILE` writes the figures (with the settings and the git commit).
"""

import argparse
import contextvars
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentdistill  # noqa: E402,F401  (offline defaults)
from agentdistill.lm import local_lm  # noqa: E402
from agentdistill.lm.engine import default_threads  # noqa: E402

STUDENT = "smollm2-135m-instruct"
TEACHER = "qwen2.5-coder-0.5b-instruct"
CHAT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
# An agent-sized prompt (~500 tokens of instructions): where sharing the prompt's KV cells across samples pays.
AGENT_CHAT = [{"role": "system", "content": "You solve tasks by writing Python code in steps. " * 50}, *CHAT]


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(baseline, new, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Median of each, alternating baseline and new; each function returns the work done (tokens, tasks)."""
    if warmup:
        baseline(), new()  # loads, caches, page-ins
    rates_a, rates_b = [], []
    for _ in range(repeats):
        dt, work = timed(baseline)
        rates_a.append(work / dt)
        dt, work = timed(new)
        rates_b.append(work / dt)
    return statistics.median(rates_a), statistics.median(rates_b)


def report(results: dict, key: str, label: str, base_name: str, base: float, new_name: str, new: float,
           unit: str, goal: float) -> None:
    ratio = new / base
    verdict = "PASS" if ratio >= goal else "FAIL"
    print(f"{key}. {label}: {base_name} {base:.2f} {unit} | {new_name} {new:.2f} {unit} | ratio {ratio:.2f} "
          f"(goal >= {goal}: {verdict}) [{load()}]", flush=True)
    results[key] = {"commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M"), "label": label,
                    "baseline_name": base_name, "baseline": base, "new_name": new_name, "new": new,
                    "unit": unit, "ratio": ratio, "goal": goal, "pass": ratio >= goal, "load_average": os.getloadavg()}


def _commit() -> str:
    """HEAD, with "+dirty" when the working tree has uncommitted changes (the figures are of that tree)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def engine_vs_raw(student, tokens: int, repeats: int, results: dict) -> None:
    from llama_cpp import Llama

    from agentdistill.lm.chat import render_prompt

    engine = student.engine
    prompt = render_prompt(engine.tokenizer, CHAT, None)
    threads = engine.n_threads or default_threads()
    raw = Llama(model_path=engine.gguf, n_ctx=engine.n_ctx, n_threads=threads, n_threads_batch=threads,
                flash_attn=True, verbose=False)  # the engine's attention kernel: the same numerics, a fair limit
    ids = raw.tokenize(prompt.encode(), add_bos=False, special=True)

    def raw_call():
        out = raw.create_completion(prompt=ids, max_tokens=tokens, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                    repeat_penalty=1.0)
        return out["usage"]["completion_tokens"]

    def engine_call():
        return engine.generate(CHAT, max_tokens=tokens)[0].completion_tokens

    base, new = interleaved(raw_call, engine_call, repeats)
    report(results, "1", "compiled student, greedy decode", "raw llama-cpp-python", base, "engine", new, "tok/s", 0.9)


def new_vs_transformers(student, folder: str, tokens: int, repeats: int, results: dict) -> None:
    old = local_lm(folder, backend="transformers").engine

    def transformers_call():
        return old.generate(CHAT, max_tokens=tokens)[0].completion_tokens

    def llama_call():
        return student.engine.generate(CHAT, max_tokens=tokens)[0].completion_tokens

    base, new = interleaved(transformers_call, llama_call, repeats)
    report(results, "2", "compiled student, greedy decode", "transformers fp32", base,
           f"llama.cpp {student.model.rsplit('-', 1)[-1]}", new, "tok/s", 5.0)


def sag_batched(student, n: int, tokens: int, repeats: int, results: dict) -> None:
    engine = student.engine

    def sequential():
        return sum(engine.generate(AGENT_CHAT, n=1, temperature=0.7, max_tokens=tokens, seed=i)[0].completion_tokens
                   for i in range(n))

    def batched():
        return sum(c.completion_tokens for c in engine.generate(AGENT_CHAT, n=n, temperature=0.7, max_tokens=tokens,
                                                                seed=0))

    base, new = interleaved(sequential, batched, repeats)
    report(results, "3", f"SAG n={n} over a ~500-token agent prompt", f"{n} sequential calls", base,
           "one batched call", new, "tok/s", 3.0)
    # the ceiling of any batch on this machine: the same model evaluating one long prompt (one step, all tokens)
    rates = []
    for i in range(repeats):
        chat = [{"role": "system", "content": f"Case {i} of {time.time()}. " + AGENT_CHAT[0]["content"]}, *CHAT]
        dt, [c] = timed(lambda: engine.generate(chat, max_tokens=1))
        rates.append(c.prompt_tokens / dt)
    results["3"]["prompt_evaluation_tokens_per_s"] = statistics.median(rates)
    print(f"   ceiling: the same model evaluates a prompt at {statistics.median(rates):.1f} tok/s (one batch of all "
          f"its tokens): no decode batch can beat that on this CPU [{load()}]", flush=True)


def _questions(benchmark: str, limit: int, split: str = "test"):
    from agentdistill.benchmarks import load_benchmark

    return load_benchmark(benchmark, split=split, limit=limit)


def _run_tasks(agent, examples, threads: int) -> int:
    def one(example):
        agent(**example.inputs())
        return 1

    if threads == 1:
        return sum(one(e) for e in examples)
    with ThreadPoolExecutor(max_workers=threads) as pool:  # each task in a copy of the caller's DSPy context
        return sum(pool.map(lambda e: contextvars.copy_context().run(one, e), examples))


def teacher_concurrency(tasks: int, repeats: int, results: dict) -> None:
    from agentdistill.programs import math_agent

    teacher = math_agent(max_steps=3)
    lm = local_lm(TEACHER, backend="llama.cpp", max_tokens=256, cache=False)
    lm.engine.generate(CHAT, max_tokens=2)  # load it (a whole warm-up round would cost minutes)
    teacher.set_lm(lm)
    examples = _questions("math_medium", tasks, split="train")
    try:
        base, new = interleaved(lambda: _run_tasks(teacher, examples, 1), lambda: _run_tasks(teacher, examples, tasks),
                                repeats, warmup=False)
    finally:
        teacher.close()
    report(results, "4", f"teacher {TEACHER} math agent, {tasks} tasks", "1 at a time", base * 60,
           f"{tasks} concurrent", new * 60, "trajectories/min", 2.0)


def evaluation(folder: str, questions: int, threads: int, results: dict) -> None:
    """The same questions on both engines, interleaved in chunks of `threads` questions (old chunk, new chunk, ...)."""
    import dspy

    from agentdistill.benchmarks import answer_correct
    from agentdistill.programs import math_agent

    devset = _questions("math500", questions)
    runs = {}
    for name, lm, n_threads in (("transformers, 1 thread", local_lm(folder, max_tokens=256, cache=False), 1),
                                (f"llama.cpp, {threads} threads", local_lm(folder, backend="llama.cpp",
                                                                           max_tokens=256, cache=False), threads)):
        agent = math_agent(max_steps=3)
        agent.set_lm(lm)
        runs[name] = {"agent": agent, "threads": n_threads, "seconds": 0.0, "correct": 0.0}
    try:
        for start in range(0, len(devset), threads):
            chunk = devset[start:start + threads]
            for name, run in runs.items():
                evaluate = dspy.Evaluate(devset=chunk, metric=answer_correct, num_threads=run["threads"],
                                         display_progress=False, provide_traceback=False)
                dt, result = timed(lambda: evaluate(run["agent"]))
                run["seconds"] += dt
                run["correct"] += float(getattr(result, "score", result)) / 100 * len(chunk)
            print(f"   {start + len(chunk)}/{len(devset)} questions: "
                  + ", ".join(f"{name} {run['seconds']:.0f} s" for name, run in runs.items()) + f" [{load()}]",
                  flush=True)
    finally:
        for run in runs.values():
            run["agent"].close()
    (old_name, old), (new_name, new) = runs.items()
    report(results, "5", f"student math agent evaluation, {len(devset)} math500 questions", old_name,
           len(devset) / old["seconds"] * 60, new_name, len(devset) / new["seconds"] * 60, "questions/min", 4.0)
    results["5"]["accuracy"] = {name: 100 * run["correct"] / len(devset) for name, run in runs.items()}
    results["5"]["n"] = len(devset)


def save(path: Path, args, student, results: dict) -> None:
    """Ratios measured now replace those of an earlier run in the file; each ratio carries its commit and date."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "only")}, "student": student.model,
        "gguf": Path(student.engine.gguf).name, "cpu_count": os.cpu_count(),
        "threads": student.engine.n_threads or default_threads(), "ratios": {**old.get("ratios", {}), **results}},
        indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a fine-tuned student folder (default: the shipped student's folder)")
    parser.add_argument("--only", default="1,2,3,4,5", help="comma-separated ratios to measure")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--eval-questions", type=int, default=40)
    parser.add_argument("--eval-threads", type=int, default=4)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",")}

    from agentdistill.lm import resolve_model_path

    folder = str(args.checkpoint or resolve_model_path(STUDENT))
    start, export_s = time.perf_counter(), None
    student = local_lm(folder, backend="llama.cpp", cache=False)  # exports once (cached by content)
    student.engine.load()
    export_s = time.perf_counter() - start
    print(f"student {folder} -> {student.engine.gguf} ({export_s:.1f} s to export/load), threads "
          f"{student.engine.n_threads or default_threads()}, {args.tokens} new tokens, medians of {args.repeats} "
          f"[{load()}]", flush=True)
    results: dict = {}
    steps = {"1": lambda: engine_vs_raw(student, args.tokens, args.repeats, results),
             "2": lambda: new_vs_transformers(student, folder, args.tokens, args.repeats, results),
             "3": lambda: sag_batched(student, args.n, args.tokens, args.repeats, results),
             "4": lambda: teacher_concurrency(args.tasks, max(1, args.repeats - 1), results),
             "5": lambda: evaluation(folder, args.eval_questions, args.eval_threads, results)}
    for key, step in steps.items():
        if key in only:
            step()
            if args.json:  # after every ratio: a stopped run keeps what it measured
                save(Path(args.json), args, student, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
