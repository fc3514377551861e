"""Progress bars that also report to a log file: rich's `Progress`, plus a plain line every so often when the
console is not a terminal (a run under nohup, CI, `> run.log`), where rich draws nothing until the bar closes.

    from agentdistill.progress import Progress       # same arguments as rich.progress.Progress
    with Progress(TextColumn("{task.description}"), BarColumn()) as bar:
        task = bar.add_task("teacher trajectories", total=120)
        bar.advance(task)        # in a log: "teacher trajectories: 12/120 (10%), 4:05 elapsed, ~36:45 left"

One line per task every $AGENTDISTILL_PROGRESS_SECONDS (default 60) and one when it completes.
"""

from __future__ import annotations

import os
import time

from rich import progress as rich_progress


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress(rich_progress.Progress):
    """rich's Progress; on a console that is not a terminal, also periodic plain lines (see the module doc)."""

    def __init__(self, *columns, interval: float | None = None, **kwargs):
        super().__init__(*columns, **kwargs)
        self.interval = float(os.environ.get("AGENTDISTILL_PROGRESS_SECONDS", 60) if interval is None else interval)
        self._logged: dict = {}  # task id -> monotonic time of its last line
        self._finished: set = set()

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log_line(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log_line(task_id)

    def _log_line(self, task_id) -> None:
        if self.disable or self.console.is_terminal or task_id in self._finished:
            return
        task = self._tasks[task_id]
        finished = task.total is not None and task.completed >= task.total
        now = time.monotonic()
        if not finished and now - self._logged.get(task_id, task.start_time or now) < self.interval:
            return
        self._logged[task_id] = now
        if finished:
            self._finished.add(task_id)
        done = f"{task.completed:,.0f}" + (f"/{task.total:,.0f} ({100 * task.completed / task.total:.0f}%)"
                                           if task.total else "")
        line = f"{task.description}: {done}, {_clock(task.elapsed or 0)} elapsed"
        if not finished and task.time_remaining is not None:
            line += f", ~{_clock(task.time_remaining)} left"
        fields = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in task.fields.items()
                           if v not in ("", None))
        self.console.print(line + (f" ({fields})" if fields else ""), markup=False, highlight=False,
                           soft_wrap=True)
