"""Progress bars in a log file: plain lines at an interval and at completion when the console is no terminal."""

import io

from rich.console import Console
from rich.progress import BarColumn, TextColumn

from agentdistill.progress import Progress


def _log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_a_log_gets_a_line_per_interval_and_one_at_completion():
    console, out = _log_console()
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console, interval=0) as bar:
        task = bar.add_task("teacher trajectories", total=4, acc=0.5)
        for _ in range(4):
            bar.advance(task)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("teacher trajectories:")]
    assert lines[0].startswith("teacher trajectories: 1/4 (25%), 0:00 elapsed") and "(acc 0.5)" in lines[0]
    assert lines[-1].startswith("teacher trajectories: 4/4 (100%)") and "left" not in lines[-1]
    assert len(lines) == 4  # one per advance at interval 0; nothing after completion


def test_a_long_interval_logs_only_the_completion():
    console, out = _log_console()
    with Progress(TextColumn("{task.description}"), console=console, interval=3600) as bar:
        task = bar.add_task("indexing", total=3)
        for _ in range(3):
            bar.advance(task)
        bar.update(task, completed=3)  # updates after completion add nothing
    assert [ln for ln in out.getvalue().splitlines() if ln.startswith("indexing:")] == \
        [next(ln for ln in out.getvalue().splitlines() if ln.startswith("indexing: 3/3 (100%)"))]


def test_a_terminal_gets_only_the_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with Progress(TextColumn("{task.description}"), console=console, interval=0) as bar:
        task = bar.add_task("eval", total=2)
        bar.advance(task, 2)
    assert "eval: 2/2" not in out.getvalue()
