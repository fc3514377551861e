"""What runs inside the worker: execute one code step in the episode's namespace and describe the outcome.

This module lives in the sandboxed process (never in the host). `Runtime.run(code)` executes model-written
code like a notebook cell: the namespace persists between steps, the value of a trailing expression is
reported, stdout/stderr are captured with a cap that holds while the code prints (a runaway print loop is
stopped, never buffered), tools are proxies that send a request over the channel and wait for the host's
reply, and `final_answer(x)` sends `x` as plain data in a `final` message (cut to a size the channel carries,
with a note in the output saying so) - the host never reads it from printed text.

After every step the process's signal state is put back as the worker set it up (`SignalState.restore`):
timers cancelled, handlers, mask and pending signals reset, so nothing a step armed fires in the holder later.
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
MAX_FINAL = 1_000_000  # characters of JSON for a final answer (the channel carries 8 MiB)


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
        self.final_note = ""
        self.signals = SignalState()  # as the worker set them up: restored after every step
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
        cuts: list[str] = []
        value = to_plain(answer, cuts=cuts)
        size = len(json.dumps(value, ensure_ascii=False))
        if size > MAX_FINAL:
            cuts.append(f"its {size} characters of JSON became their first {MAX_FINAL // 10} as text")
            value = json.dumps(value, ensure_ascii=False)[: MAX_FINAL // 10]
        self.final_called, self.final_value = True, value
        self.final_note = ("Note: the final answer was cut: " + "; ".join(cuts) + ".") if cuts else ""
        self.chan.send({"type": "final", "step": self.step, "answer": value})
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
        self.final_called, self.final_value, self.final_note = False, None, ""  # this step only
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
            self.signals.restore()  # also ends our own soft timer
            sys.stdout, sys.stderr = saved
        return self._finish(res, out)

    def _finish(self, res: dict, out: _CappedWriter) -> dict:
        notes = [n for n in (self.final_note, self._restore_bindings()) if n]
        res["stdout"] = "\n".join([out.text()] * bool(out.text()) + notes)
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


class SignalState:
    """The signal dispositions of the worker, taken once; `restore()` puts them back after a step.

    A step may arm timers (alarm, setitimer), install handlers, block signals or leave some pending; the
    process that ran it becomes the holder of the state when it succeeds, where any of these would fire
    while the episode is idle (a default action kills it, state and all). /proc/self/status says in one read
    which signals are caught, ignored, blocked or pending, so an untouched state costs no further call."""

    TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)

    def __init__(self):
        self.caught, self.ignored, _, _ = _signal_masks()
        self.handlers = {}
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                h = signal.getsignal(sig)
                self.handlers[sig] = h if h is not None else signal.SIG_DFL

    def restore(self) -> None:
        for t in self.TIMERS:
            signal.setitimer(t, 0)
        caught, ignored, blocked, pending = _signal_masks()
        changed = (caught ^ self.caught) | (ignored ^ self.ignored) | pending
        if not changed and not blocked:
            return
        signal.pthread_sigmask(signal.SIG_SETMASK, list(self.handlers))  # nothing arrives while we reset
        for sig, handler in self.handlers.items():
            if changed >> (sig - 1) & 1:
                signal.signal(sig, signal.SIG_IGN)  # setting SIG_IGN discards a pending signal
                if handler is not signal.SIG_IGN:
                    signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _signal_masks() -> tuple[int, int, int, int]:
    """(caught, ignored, blocked, pending) signal bit masks of this process (bit n-1: signal n).

    os.read, not open(): this runs after every step, and the buffered file object costs four times more."""
    fd = os.open("/proc/self/status", os.O_RDONLY)
    try:
        text = os.read(fd, 16384)
    finally:
        os.close(fd)
    # SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt: consecutive lines, hexadecimal
    lines = text[text.index(b"SigPnd:"):].split(b"\n", 5)[:5]
    fields = dict((k.strip(), int(v, 16)) for k, v in (line.split(b":") for line in lines))
    return (fields[b"SigCgt"], fields[b"SigIgn"], fields[b"SigBlk"], fields[b"SigPnd"] | fields[b"ShdPnd"])


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
    if isinstance(e, RuntimeError) and "new thread" in str(e):
        lines.append("Threads are not available in the sandbox (a step runs in one thread): do the work in a loop.")
    return "\n".join(lines)
