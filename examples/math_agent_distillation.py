"""A real agent-distillation experiment on CPU: teacher Qwen2.5-Coder-0.5B-Instruct (llama.cpp) -> student
SmolLM2-135M-Instruct, on MATH train problems; the figures in the README's "Distilling" section come from it.

    .venv/bin/python examples/math_agent_distillation.py --stages noprefix,prefix,baseline,compile --epochs 3
    .venv/bin/python examples/math_agent_distillation.py --stages noprefix,prefix,report   # the prefix figures

Tasks: MATH train (math_medium_1000, Level 2, integer answers, Prealgebra/Algebra/Number Theory, short questions)
in file order; HELD_START..HELD_START+N_HELD are held out for the student's solve rate, the first N_TRAIN of the
rest are distilled. `--tasks compute`: the 56 Level-2 integer-answer problems that ask to compute, evaluate or
simplify a written expression (the kind a code action solves outright; 36 train / 20 held out with the defaults
--held-start 36). Stages write results.json after each step; the trajectory store makes every stage resumable.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

WORK = Path(os.environ.get("OPT_REAL_DIR", "runs/math_agent_distillation"))
WORK.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{WORK}/mlflow.db")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import agentdistill as ad  # noqa: E402

from agentdistill.benchmarks import answer_correct, load_benchmark  # noqa: E402
from agentdistill.benchmarks.stats import wilson  # noqa: E402
from agentdistill.optimizers import SFT, AgentDistill  # noqa: E402
from agentdistill.optimizers.filtering import filter_trajectories  # noqa: E402
from agentdistill.optimizers.store import example_id  # noqa: E402
from agentdistill.programs import math_agent  # noqa: E402

RESULTS = WORK / os.environ.get("OPT_RESULTS", "results.json")


def load_results():
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save(key, value):
    r = load_results()
    r[key] = value
    RESULTS.write_text(json.dumps(r, indent=1, default=str))
    print(f"== {key}: {json.dumps(value, default=str)[:2000]}", flush=True)


def pick_tasks(n_train, n_held, held_start, kind="level2"):
    examples = load_benchmark("math_medium", split="train")
    ok = [e for e in examples if e.get("level") == "Level 2" and re.fullmatch(r"-?\d+", str(e.answer).strip())]
    if kind == "compute":
        ok = [e for e in ok if re.match(r"(Compute|Evaluate|What is|Calculate|Simplify|Find)\b", e.question)
              and len(e.question) < 160 and "$" in e.question]
    else:
        ok = [e for e in ok if len(e.question) < 220 and e.get("type") in {"Prealgebra", "Algebra", "Number Theory"}]
    held = ok[held_start:held_start + n_held]
    return (ok[:held_start] + ok[held_start + n_held:])[:n_train], held


def write_prefix_report(args, train, teacher, sft, store) -> None:
    """results/first_thought_prefix.json: the teacher with and without the prefix, paired on the tasks that the
    store holds both trajectories of (all of them after both stages; fewer after an interrupted prefix stage)."""
    import subprocess

    from agentdistill.benchmarks.stats import paired_difference
    from agentdistill.optimizers.agent_distill import _without_final_ask
    from agentdistill.optimizers.store import TrajectoryStore

    st, gen = TrajectoryStore(store), _without_final_ask(teacher)
    keys = {name: AgentDistill(metric=answer_correct, first_thought_prefix=(name == "prefix"), sft=sft, store=store,
                               track=False).trajectory_settings(gen, gen.step.lm) for name in ("noprefix", "prefix")}
    both = [e for e in train if all(st.has("trajectory", example_id(e), k) for k in keys.values())]
    if not both:
        sys.exit("report: no task has both trajectories yet; run the stages noprefix,prefix first")
    unsolved = {"teacher_error", "no_final_answer", "wrong_answer", "metric_error"}
    rows, solved = {}, {}
    for name, key in keys.items():
        trajs = [st.get("trajectory", example_id(e), key) for e in both]
        kept, report = filter_trajectories(list(zip(both, trajs)), answer_correct, program=teacher,
                                           ids=[example_id(e) for e in both])
        solved[name] = [int(report.per_example[example_id(e)] == "kept"
                            or not unsolved & set(report.per_example[example_id(e)])) for e in both]
        rows[name] = {"n": len(both), "solved": sum(solved[name]), "success": wilson(sum(solved[name]), len(both)),
                      "kept": report.kept, "step1_parse_errors": step1_parse_errors(trajs),
                      "dropped_by": report.summary()["dropped_by"],
                      "seconds": sum(t["timings"]["total_s"] for t in trajs)}  # agent time (without the CoT pass)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {"experiment": "first-thought prefix, teacher success on the same MATH train tasks",
           "settings": {"teacher": "qwen2.5-coder-0.5b-instruct (llama.cpp, greedy)", "max_steps": args.teacher_steps,
                        "max_tokens": 384, "tasks": args.tasks, "n_train": args.n_train,
                        "task_ids": [e.id for e in both]},
           "commit": commit, "load_average": list(os.getloadavg()), "rows": rows,
           "paired_prefix_minus_noprefix": paired_difference(solved["prefix"], solved["noprefix"])}
    path = Path("results/first_thought_prefix.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(both)} paired tasks")


def step1_parse_errors(trajs) -> int:
    """Trajectories whose first step did not parse (the prefix's effect shows there first)."""
    return sum(1 for t in trajs if t and t.get("steps") and t["steps"][0].get("parse_error"))


def evaluate(program, devset, name):
    """The library's evaluation (dspy.Evaluate underneath), summarised the way this script reports it."""
    from agentdistill.benchmarks import evaluate as run_evaluation

    t0 = time.time()
    res = run_evaluation(program, {name: devset}, log_to_mlflow=False)
    rows = [{"id": r.id, "gold": r.gold, "answer": r.prediction if r.error is None else f"ERROR {r.error}",
             "correct": r.correct, "steps": r.steps or 0,
             "parse_errors": (r.trajectory or {}).get("parse_errors", 0)} for r in res.results[name]]
    return {"accuracy": res.accuracy[name], "correct": sum(r["correct"] for r in rows), "n": len(rows),
            "seconds": round(time.time() - t0, 1), "rows": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="prefix,baseline,compile,noprefix")
    ap.add_argument("--n-train", type=int, default=72)
    ap.add_argument("--n-held", type=int, default=20)
    ap.add_argument("--held-start", type=int, default=32)
    ap.add_argument("--teacher-steps", type=int, default=4)
    ap.add_argument("--student-steps", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--student-tokens", type=int, default=256)
    ap.add_argument("--compile-prefix", type=int, default=1, help="compile on prefix (1) or no-prefix (0) trajectories")
    ap.add_argument("--tasks", choices=["level2", "compute"], default="level2", help="which MATH problems (see top)")
    ap.add_argument("--only-stored", action="store_true", help="compile on the train tasks already in the store")
    a = ap.parse_args()
    train, held = pick_tasks(a.n_train, a.n_held, a.held_start, a.tasks)
    save("tasks", {"train_ids": [e.id for e in train], "held_ids": [e.id for e in held]})

    teacher = math_agent(max_steps=a.teacher_steps, max_tokens=384)
    teacher.set_lm(ad.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp", max_tokens=384))
    student = math_agent(max_steps=a.student_steps, max_tokens=a.student_tokens)
    student.set_lm(ad.local_lm("smollm2-135m-instruct", max_tokens=a.student_tokens))
    sft = SFT(epochs=a.epochs, per_device_batch_size=4, max_length=1536, output_dir=str(WORK / "out"),
              save_steps=50)
    store = WORK / "store.jsonl"

    for stage in a.stages.split(","):
        t0 = time.time()
        if stage in ("prefix", "noprefix"):
            d = AgentDistill(metric=answer_correct, first_thought_prefix=(stage == "prefix"), sft=sft, store=store,
                             track=False)
            trajs = d.generate(train, teacher)
            kept, report = filter_trajectories(list(zip(train, trajs)), answer_correct, program=teacher,
                                               ids=[example_id(e) for e in train])
            # per task: did the teacher's answer pass the metric (kept, or dropped only for format reasons)
            unsolved = {"teacher_error", "no_final_answer", "wrong_answer", "metric_error"}
            solved = [int(report.per_example[example_id(e)] == "kept"
                          or not unsolved & set(report.per_example[example_id(e)])) for e in train]
            save(f"teacher_{stage}", {"success_rate": report.success_rate, "kept": report.kept,
                                      "total": report.total, "summary": report.summary() | {"per_example": None},
                                      "success_interval": wilson(round(report.success_rate * report.total),
                                                                 report.total),
                                      "step1_parse_errors": step1_parse_errors(trajs),
                                      "solved": solved, "stats": d.last_stats, "seconds": round(time.time() - t0, 1)})
        elif stage == "report":
            write_prefix_report(a, train, teacher, sft, store)
        elif stage == "baseline":
            save("student_before", evaluate(student, held, "before"))
        elif stage == "compile":
            if a.only_stored:
                from agentdistill.optimizers.store import TrajectoryStore

                have = {r["example_id"] for r in TrajectoryStore(store).records(kind="trajectory")}
                train = [e for e in train if example_id(e) in have]
                save("compile_trainset", {"n": len(train), "ids": [e.id for e in train]})
            d = AgentDistill(metric=answer_correct, first_thought_prefix=bool(a.compile_prefix), sft=sft, store=store,
                             track=True)
            compiled = d.compile(student, trainset=train, teacher=teacher)
            save("compile", {"stats": d.last_stats, "kept": d.last_report.kept, "model": compiled.step.lm.model,
                             "seconds": round(time.time() - t0, 1)})
            compiled.save(str(WORK / "compiled_program"), save_program=True)
            save("student_after", evaluate(compiled, held, "after"))
        else:
            sys.exit(f"unknown stage {stage}")


if __name__ == "__main__":
    main()
