"""`agentdistill distill CONFIG --stage teacher`: the teacher's outputs alone, and the committed store they start from.

    agentdistill distill configs/table2_cpu.toml --stage teacher    # resumable: rerun after a kill, nothing is redone

Every distilled variant's teacher outputs (CoT answers, first-thought prefixes, trajectories) go into the job's one
store (`distill.teacher_store_path`), each appended as it finishes; the full run then asks the teacher nothing the
store holds. `[distill] seed_store` (a committed store file) is merged into it first.
"""

from __future__ import annotations

import time
from pathlib import Path

from agentdistill.cli import config, distill


def seed_teacher_store(cfg: config.Config, out: Path, console) -> int:
    """Merge [distill] seed_store (a committed set of teacher outputs) into the job's store; says what it did."""
    from rich.markup import escape

    from agentdistill.optimizers.store import TrajectoryStore

    if not cfg.distill.seed_store:
        return 0
    added = TrajectoryStore(distill.teacher_store_path(out)).merge_from(cfg.distill.seed_store)
    console.print(f"teacher outputs: {added} records merged from {escape(cfg.distill.seed_store)} (committed, made by "
                  "the teacher with these settings; only those whose settings match are used: the teacher is asked "
                  "for the rest). `--regenerate-teacher` skips the merge.", highlight=False)
    return added


def generate_teacher_outputs(cfg: config.Config, console=None) -> dict[str, dict]:
    """The teacher stage alone (`distill --stage teacher`): every distilled variant's teacher outputs (CoT answers,
    prefixes, trajectories) into the job's store, nothing trained. Resumable: what the store holds is not asked
    again, so a killed run continues where it stopped. Returns {variant: {"tasks", "seconds", "reused", "errors"}}
    ("reused" and "errors": agent variants, from the teleprompter's stats)."""
    from rich.console import Console

    console = console or Console()
    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_teacher_store(cfg, out, console)
    trainset = distill.load_trainset(cfg)
    search = distill.make_search(cfg) if cfg.task.family == "factual" else None
    teacher_lm = distill.make_lm(cfg.teacher, cfg.task.max_tokens)
    report = {}
    for variant in [v for v in cfg.distill.variants if config.is_distilled(v)]:
        kind = config.program_kind(variant)
        teacher = distill.make_program(kind, cfg, search, max_tokens=cfg.teacher.max_tokens or None)
        teacher.set_lm(teacher_lm)
        teleprompter = distill.teleprompter_for(variant, cfg, out, track=False)
        console.rule(f"[bold]teacher outputs for {variant}[/bold] ({len(trainset)} tasks)")
        start = time.perf_counter()
        records = teleprompter.generate(trainset, teacher)
        stats = teleprompter.last_stats if kind == "agent" else {}
        report[variant] = {"tasks": len(records), "seconds": time.perf_counter() - start,
                           "reused": stats.get("reused_trajectories"), "errors": stats.get("teacher_errors")}
        console.print(f"{variant}: {len(records)} teacher outputs in {distill.teacher_store_path(out)} "
                      f"({report[variant]['seconds']:.0f} s)", highlight=False)
    return report
