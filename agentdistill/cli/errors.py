"""Failures the user can fix: one message (what, where, the fix), the Python traceback only with --debug.

    from agentdistill.cli.errors import UserError, print_error
    raise UserError("--model: unknown model 'smollm2-136m-instruct'; did you mean 'smollm2-135m-instruct'? ...")
    print_error(console, "unknown key 'epoch' in [sft]", label="config error")   # "[sft]" printed as written

Messages are plain text: rich would read "[sft]" or "[teacher]" as markup tags and drop them, so every message
goes through `print_error`, which escapes it. `main.py` catches the exception types of `user_error_types()`.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a name, a path, a setting); the message says what, where and the fix."""


class Problem(str):
    """One line of `Problems`, keeping the exception it was found from (shown with --debug)."""

    cause: BaseException | None = None

    @classmethod
    def from_error(cls, text: str, cause: BaseException) -> "Problem":
        problem = cls(text)
        problem.cause = cause
        return problem


class Problems(UserError):
    """Several problems found at once (the checks before a run); each is one line."""

    def __init__(self, problems: list[str], outcome: str = ", nothing was run"):
        self.problems = list(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{count}{outcome}:\n" + "\n".join(f"- {p}" for p in problems))


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix: printed as one message, never as a traceback."""
    from agentdistill.benchmarks.loaders import BenchmarkFormatError, BenchmarkNotFoundError
    from agentdistill.cli.config import ConfigError
    from agentdistill.lm.models import ModelNotFoundError
    from agentdistill.tracking.lifecycle import JobStillRunning
    from agentdistill.tracking.probe import TrackingStoreError

    types: list[type[BaseException]] = [UserError, ConfigError, BenchmarkFormatError, BenchmarkNotFoundError,
                                        TrackingStoreError, JobStillRunning, ModelNotFoundError]
    try:  # the retrieval tools are an optional part of an install
        from agentdistill.tools.retrieval.colbert_search import IndexNotFoundError

        types.append(IndexNotFoundError)
    except ImportError:
        pass
    return tuple(types)


def print_error(console, message: str, label: str = "error") -> None:
    """`label: message` in red, the message exactly as written (markup escaped, no highlighting, not wrapped)."""
    from rich.markup import escape

    console.print(f"[red]{escape(label)}:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)


def print_warning(console, message: str, label: str = "warning") -> None:
    from rich.markup import escape

    console.print(f"[yellow]{escape(label)}:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


def label_for(error: BaseException) -> str:
    from agentdistill.cli.config import ConfigError

    return "config error" if isinstance(error, ConfigError) else "error"


def report(console, error: BaseException, debug: bool) -> int:
    """Print a user error (with its traceback when `debug`); the exit status 2."""
    if debug:
        console.print_exception()
        for problem in getattr(error, "problems", []):  # the checks' problems: the exceptions they came from
            if getattr(problem, "cause", None) is not None:
                from rich.traceback import Traceback

                console.print(f"found from {type(problem.cause).__name__}:", highlight=False)
                console.print(Traceback.from_exception(type(problem.cause), problem.cause,
                                                       problem.cause.__traceback__))
    print_error(console, str(error), label=label_for(error))
    if not debug:
        console.print("(rerun with --debug for the Python traceback)", highlight=False, style="dim")
    return 2
