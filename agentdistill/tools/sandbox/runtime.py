"""What runs inside the worker: execute one code step in the episode's namespace and describe the outcome.

This module lives in the sandboxed process (never in the host). `Runtime.run(code)` executes model-written
code like a notebook cell: the namespace persists between steps, the value of a trailing expression is
reported, stdout/stderr are captured with a cap that holds while the code prints (a runaway print loop is
stopped, never buffered), tools are proxies that send a request over the channel and wait for the host's
reply, and `final_answer(x)` records `x` as plain data - the host reads it from the step's result message,
never from printed text.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import signal
import sys
import traceback

from .convert import short_repr, to_plain


MAX_TOOL_ARGS = 1_000_000  # characters of JSON per tool call


class FinalAnswerSignal(BaseException):
    """Raised by final_answer() to end the step (BaseException: `except Exception` in agent code won't eat it)."""


class StepTimeout(BaseException):
    """Raised by the soft timer (used when a step runs without a snapshot)."""


class OutputLimitExceeded(BaseException):
    """The code printed far more than the output limit: the step is stopped."""


class ToolError(Exception):
    """A host tool failed; the message is the tool's error."""


class _CappedWriter(io.TextIOBase):
    """sys.stdout/sys.stderr replacement: keeps the first `limit` characters, stops the step at `hard_limit`."""

    def __init__(self, limit: int, hard_limit: int):
        self.limit, self.hard_limit = limit, hard_limit
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0
        self.exceeded = False

    def writable(self) -> bool:
        return True

    def write(self, s) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.total += len(s)
        if self.kept < self.limit:
            piece = s[: self.limit - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        if self.total > self.hard_limit:
            self.exceeded = True
            raise OutputLimitExceeded()
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        out = "".join(self.parts)
        if self.total > self.kept:
            out += f"\n[... output truncated: {self.total - self.kept} more characters not shown]"
        return out


class Runtime:
    """The episode's interpreter state: a namespace plus the tool/final_answer bindings."""

    def __init__(self, tool_docs: dict[str, str], output_limit: int, memory_mb: int | None):
        self.chan = None  # set by the worker; swapped when the process becomes a fork candidate
        self.step = 0
        self.output_limit = output_limit
        self.memory_mb = memory_mb
        self.final_called = False
        self.final_value = None
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        for name, doc in tool_docs.items():
            self.ns[name] = self._tool_proxy(name, doc)
        self.ns["final_answer"] = self._final_answer
        self.bindings = {name: self.ns[name] for name in (*tool_docs, "final_answer")}
        self.in_step = False
        self.step_pid = None
        self.private_fds: list[int] = []  # the worker's own fds (channel, commit pipe): closed in code's forks
        os.register_at_fork(after_in_child=self._after_fork_in_code)

    def _after_fork_in_code(self) -> None:
        """A process forked by the agent's code must not speak for the step: cut it off the channel."""
        if not self.in_step:
            return
        for fd in [self.chan.fileno() if self.chan else -1] + self.private_fds:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- bindings visible to the agent's code -------------------------------------------------------------
    def _final_answer(self, answer):
        """Give the final answer and end the episode: final_answer(42)."""
        self.final_called = True
        self.final_value = to_plain(answer)
        raise FinalAnswerSignal()

    def _tool_proxy(self, name: str, doc: str):
        runtime = self

        def tool(*args, **kwargs):
            msg = {"type": "tool", "step": runtime.step, "name": name,
                   "args": to_plain(list(args), max_str=None), "kwargs": to_plain(dict(kwargs), max_str=None)}
            size = len(json.dumps(msg, ensure_ascii=False))
            if size > MAX_TOOL_ARGS:
                raise ValueError(f"{name}(): arguments of {size} characters exceed the limit of {MAX_TOOL_ARGS}")
            runtime.chan.send(msg)
            while True:
                reply = runtime.chan.recv()
                if reply.get("type") == "tool_result" and reply.get("step") == runtime.step:
                    break  # anything else is a stale reply of an earlier, killed step
            if "error" in reply:
                raise ToolError(f"{name}: {reply['error']}")
            return reply.get("result")

        tool.__name__ = tool.__qualname__ = name
        tool.__doc__ = doc
        return tool

    # -- one step -----------------------------------------------------------------------------------------
    def run(self, code: str, soft_timeout: float | None = None) -> dict:
        """Execute `code`; return the result fields of the step (stdout, value, error, error_kind, final)."""
        self.step += 1
        self.final_called, self.final_value = False, None  # is_final describes this step only
        filename = f"<step {self.step}>"
        out = _CappedWriter(self.output_limit, max(self.output_limit * 20, 1_000_000))
        res = {"stdout": "", "value": None, "error": None, "error_kind": None}
        try:
            tree = ast.parse(code, filename, "exec")
        except (SyntaxError, ValueError) as e:  # ValueError: source contains null bytes
            res.update(error=_format_syntax_error(e), error_kind="syntax")
            return self._finish(res, out)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)  # tracebacks show lines
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        if soft_timeout:
            signal.signal(signal.SIGALRM, _raise_timeout)
            signal.setitimer(signal.ITIMER_REAL, soft_timeout)
        self.in_step, self.step_pid = True, os.getpid()
        try:
            exec(compile(tree, filename, "exec"), self.ns)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), self.ns)
                if value is not None:
                    res["value"] = short_repr(value, self.output_limit)
        except FinalAnswerSignal:
            pass
        except StepTimeout:
            res.update(error=f"Timeout: the code ran longer than {soft_timeout:g}s and was stopped.",
                       error_kind="timeout")
        except OutputLimitExceeded:
            res.update(error="OutputLimit: the code printed more than "
                             f"{out.hard_limit} characters and was stopped.", error_kind="output_limit")
        except MemoryError as e:
            limit = f" (limit {self.memory_mb} MB)" if self.memory_mb else ""
            res.update(error=_format_exception(e, filename) + f"\nThe code ran out of memory{limit}.",
                       error_kind="memory")
        except BaseException as e:  # SystemExit, KeyboardInterrupt included: the worker must survive
            if out.exceeded:
                res.update(error="OutputLimit: the code printed more than "
                                 f"{out.hard_limit} characters and was stopped.", error_kind="output_limit")
            else:
                res.update(error=_format_exception(e, filename), error_kind="exception")
        finally:
            self.in_step = False
            if os.getpid() != self.step_pid:  # a process the code forked got here: it is not the step
                os._exit(0)
            if soft_timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            sys.stdout, sys.stderr = saved
        return self._finish(res, out)

    def _finish(self, res: dict, out: _CappedWriter) -> dict:
        note = self._restore_bindings()
        res["stdout"] = out.text() + ("\n" if note and out.text() else "") + note
        res["is_final"] = self.final_called
        res["final_answer"] = self.final_value if self.final_called else None
        return res


    def _restore_bindings(self) -> str:
        """Put back the tools (and final_answer) the step's code replaced; the note says so to the model.

        Small models copy the system prompt's tool stubs (`def final_answer(answer) -> None: ...`): the no-op would
        then swallow every later call. Restored after the step, so the step's own code ran as written."""
        replaced = [name for name, fn in self.bindings.items() if self.ns.get(name) is not fn]
        for name in replaced:
            self.ns[name] = self.bindings[name]
        if not replaced:
            return ""
        names = ", ".join(f"`{n}`" for n in replaced)
        return (f"Note: your code redefined {names}, which the environment provides; restored. Call them, do not "
                "define them.")


def _raise_timeout(signum, frame):
    raise StepTimeout()


def _format_syntax_error(e: Exception) -> str:
    if isinstance(e, SyntaxError):
        lines = [f"SyntaxError: {e.msg} (line {e.lineno})"]
        if e.text:
            lines.append("    " + e.text.rstrip("\n"))
            if e.offset:
                lines.append("    " + " " * max(e.offset - 1, 0) + "^")
        return "\n".join(lines)
    return f"SyntaxError: {e}"


def _format_exception(e: BaseException, filename: str, max_frames: int = 3) -> str:
    """Traceback tail a model can act on: the last frames (agent code first) and the error line."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
    agent = [i for i, f in enumerate(frames) if f.filename.startswith("<step ")]
    if agent:  # keep the last agent frame and at most one library frame below it
        end = min(agent[-1] + 2, len(frames))
        frames = frames[max(0, end - max_frames):end]
    else:
        frames = frames[-max_frames:]
    lines = ["Traceback (most recent call last):"]
    for f in frames:
        where = f.filename if f.filename.startswith("<step ") else f.filename.rsplit("/", 1)[-1]
        lines.append(f'  File "{where}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    try:
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
    except Exception:
        msg = type(e).__name__
    if len(msg) > 2000:
        msg = msg[:2000] + "..."
    lines.append(msg)
    return "\n".join(lines)
