"""Host side of one episode: run steps, serve tool calls, fork candidates, adopt one.

    with sandbox.episode() as ep:
        r = ep.run("x = 2\\nx * 21")        # r.value == "42"
        forks = ep.fork(3)                  # three copies of the state (and of the working folder)
        results = [f.run(c) for f, c in zip(forks, codes)]
        ep.adopt(forks[1])                  # keep candidate 1's state; the others are closed

Everything the worker sends is validated; a worker that stops answering (hard deadline: the step timeout
plus a grace period), dies, or breaks the protocol is killed and replaced by a fresh one, and the step's
result says that the variables were lost. Only that episode's processes are killed: its forks (and the
episode they were forked from) share its family and go on.

A step's final answer is what the worker's `final_answer` sent as a `final` message during the step; the
`done` message that ends a step cannot make it final (code can write on the channel, see README).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from typing import Any

from . import cgroups
from .channel import Channel, ChannelClosed, ChannelTimeout, ProtocolError
from .convert import to_plain
from .isolation import IsolationReport

GRACE_S = 2.0  # after the step deadline, how long the host waits for the worker's own timeout report
MAX_TOOL_RESULT = 4 * 1024 * 1024
ERROR_KINDS = {None, "syntax", "exception", "timeout", "memory", "crash", "output_limit"}


@dataclasses.dataclass
class StepResult:
    """What one `Episode.run(code)` did. `observation()` is the text a model reads."""

    stdout: str = ""
    value: str | None = None
    error: str | None = None
    error_kind: str | None = None
    is_final: bool = False
    final_answer: Any = None
    tool_calls: list = dataclasses.field(default_factory=list)
    duration_s: float = 0.0
    rolled_back: bool = False  # the step failed and the variables are as before it
    state_lost: bool = False  # the worker had to be replaced: the episode starts over with no variables

    def observation(self) -> str:
        parts = []
        if self.stdout.strip():
            parts.append(self.stdout.rstrip())
        if self.value is not None:
            parts.append(f"Out: {self.value}")
        if self.error:
            parts.append(self.error)
        if self.is_final and not self.error:
            parts.append(f"Final answer: {json.dumps(self.final_answer, ensure_ascii=False)[:2000]}")
        return "\n".join(parts) if parts else "(no output)"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Episode:
    """A live worker process holding one episode's variables (see module docstring)."""

    def __init__(self, sandbox, chan: Channel, pid: int, workdir: str, family: int, report: dict,
                 parent: "Episode | None" = None, cgroups: dict | None = None):
        self._sb = sandbox
        self._chan = chan
        self.pid = pid
        self.workdir = sandbox.host_path(workdir)  # the episode's working folder, as a host path
        self.family = family
        self.isolation = IsolationReport.from_dict(report)
        self._cgroups = cgroups  # the family's cgroup folders (memory, pids), shared with its forks
        self._oom_seen = 0
        self._parent = parent
        self._forks: list[Episode] = []
        self._step = 0
        self._lock = threading.RLock()
        self.closed = False

    # -- context manager ----------------------------------------------------------------------------------
    def __enter__(self) -> "Episode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pid={self.pid}"
        return f"<Episode {state} workdir={self.workdir!r}>"

    # -- run ----------------------------------------------------------------------------------------------
    def run(self, code: str, timeout: float | None = None, snapshot: bool | None = None) -> StepResult:
        """Execute `code` in the episode. `snapshot=False` skips the rollback copy (faster; see README)."""
        if not isinstance(code, str):
            raise TypeError(f"Episode.run() takes the code as a str, got {type(code).__name__}")
        timeout = float(timeout if timeout is not None else self._sb.timeout)
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        snapshot = self._sb.snapshot if snapshot is None else bool(snapshot)
        with self._lock:
            self._check_open()
            self._step += 1
            step = self._step
            start = time.perf_counter()
            calls: list[dict] = []
            final: dict = {}
            groups, limit = self._cgroups, self.isolation.episode_memory_mb  # replacing swaps them
            try:
                self._chan.send({"op": "run", "step": step, "code": code, "timeout": timeout,
                                 "snapshot": snapshot})
                msg = self._await_done(step, timeout + GRACE_S, calls, final)
            except ChannelTimeout:
                msg = self._lost(step, f"Timeout: the code ran longer than {timeout:g}s and was stopped.",
                                 "timeout")
            except (ChannelClosed, OSError):
                msg = self._lost(step, "The episode's process died during the step.", "crash")
            except ProtocolError as e:
                msg = self._lost(step, f"The episode's process broke the sandbox protocol ({e}).", "crash")
            if isinstance(msg.get("pid"), int):
                self.pid = msg["pid"]  # after a successful snapshot step the holder is a new process
            result = _result_from(msg, calls, final)
            result.duration_s = time.perf_counter() - start
            if msg.get("lost") and not result.state_lost:  # the worker told us it cannot go on
                self._replace()
                result.state_lost = True
            if result.error_kind in ("crash", "memory") or result.state_lost:
                self._explain_oom(result, groups, limit)
            return result

    def _explain_oom(self, result: StepResult, groups: dict | None, limit: int | None) -> None:
        """A process killed by the kernel because the whole episode ran out of memory: say so."""
        kills = cgroups.usage(groups).get("oom_kills", 0)
        if kills > self._oom_seen:
            self._oom_seen = kills if groups is self._cgroups else 0
            result.error = ((result.error or "") + f" The episode with its forks reached its memory limit"
                            f"{f' of {limit} MB' if limit else ''} and the kernel killed its largest process.")
            result.error_kind = "memory"

    def resources(self) -> dict:
        """What this episode's family (it and its forks) uses: memory_mb, memory_peak_mb, memory_limit_mb,
        oom_kills, processes. Empty where the machine has no episode cgroup (see isolation.missing)."""
        return cgroups.usage(self._cgroups)

    def _await_done(self, step: int, budget: float, calls: list, final: dict) -> dict:
        deadline = time.monotonic() + budget
        while True:
            msg = self._chan.recv(timeout=max(deadline - time.monotonic(), 0.0))
            kind = msg.get("type")
            if msg.get("step") != step:
                continue  # stale message of an earlier (killed) step
            if kind == "done":
                return msg
            if kind == "final":  # sent by final_answer() inside; the step's done message follows
                final["answer"] = msg.get("answer")
                continue
            if kind == "tool":
                self._serve_tool(step, msg, calls)
            else:
                raise ProtocolError(f"unexpected message type {kind!r}")

    def _serve_tool(self, step: int, msg: dict, calls: list) -> None:
        name, args, kwargs = msg.get("name"), msg.get("args"), msg.get("kwargs")
        call = {"name": name, "args": args, "kwargs": kwargs}
        fn = self._sb.tools.get(name) if isinstance(name, str) else None
        if fn is None:
            call["error"] = f"unknown tool {name!r}"
        elif not isinstance(args, list) or not isinstance(kwargs, dict):
            call["error"] = "malformed tool call"
        else:
            try:
                if self._sb.serialize_tools:
                    with self._sb.tool_lock:
                        value = fn(*args, **kwargs)
                else:
                    value = fn(*args, **kwargs)
                call["result"] = to_plain(value)
                if len(json.dumps(call["result"], ensure_ascii=False)) > MAX_TOOL_RESULT:
                    del call["result"]
                    call["error"] = f"result larger than {MAX_TOOL_RESULT} bytes"
            except Exception as e:  # the tool's failure is the code's problem to handle, not the host's
                call["error"] = f"{type(e).__name__}: {e}"[:2000]
        calls.append(call)
        reply = {"type": "tool_result", "step": step}
        reply.update({k: call[k] for k in ("result", "error") if k in call})
        self._chan.send(reply)

    def _lost(self, step: int, reason: str, kind: str) -> dict:
        self._replace()
        return {"type": "done", "step": step, "error": reason + " The episode's variables were lost and it "
                "starts over with an empty state.", "error_kind": kind, "state_lost": True}

    def _replace(self) -> None:
        """Kill this episode's worker and start a fresh, empty one (a family of its own) in its place.

        The old family is released only when no other episode is in it: forks and their parent go on."""
        old_family, old_pid = self.family, self.pid
        self._chan.close()
        self._sb._drop(old_family, self, pids=[old_pid])
        chan, info, ready = self._sb._spawn()
        self._chan, self.pid, self.family = chan, ready["pid"], info["family"]
        self.workdir = self._sb.host_path(ready["workdir"])
        self.isolation = IsolationReport.from_dict(ready.get("report", {}))
        self._cgroups, self._oom_seen = info.get("cgroups"), 0

    # -- fork / adopt -------------------------------------------------------------------------------------
    def fork(self, n: int) -> list["Episode"]:
        """`n` independent copies of this episode (state and working folder), e.g. for candidate actions."""
        if not isinstance(n, int) or not 1 <= n <= 64:
            raise ValueError(f"fork(n) needs 1 <= n <= 64, got {n!r}")
        with self._lock:
            self._check_open()
            self._chan.send({"op": "fork", "n": n})
            msg, fds = self._chan.recv(timeout=30.0, with_fds=True)
            if msg.get("type") != "forked" or len(fds) != n:
                for fd in fds:
                    socket.close(fd)
                raise RuntimeError(f"fork failed: {msg.get('error') or msg}")
            forks = []
            for fd in fds:
                sock = socket.socket(fileno=fd)
                if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
                    sock.close()
                    raise RuntimeError("fork failed: the worker sent a descriptor that is not its channel")
                chan = Channel(sock)
                ready = chan.recv(timeout=30.0)
                if ready.get("type") != "ready":
                    chan.close()
                    raise RuntimeError(f"fork failed: {ready.get('error') or ready}")
                child = Episode(self._sb, chan, ready["pid"], ready["workdir"], self.family,
                                ready.get("report") or self.isolation.to_dict(), parent=self,
                                cgroups=self._cgroups)
                child._oom_seen = self._oom_seen
                child._step = self._step
                self._sb._retain(self.family, child)
                forks.append(child)
            self._forks.extend(forks)
            return forks

    def adopt(self, fork: "Episode") -> None:
        """Take over `fork`'s state (one of this episode's forks); every other fork is closed."""
        if fork not in self._forks:
            raise ValueError("adopt() takes one of the episodes returned by this episode's fork()")
        with self._lock, fork._lock:
            self._check_open()
            fork._check_open()
            try:  # forks are children of the fork server, not of our worker: closing ours leaves them be
                self._chan.send({"op": "close"})
            except (ChannelClosed, OSError):
                pass
            self._chan.close()
            self._chan, self.pid, self.workdir = fork._chan, fork.pid, fork.workdir
            self.isolation, self._cgroups, self._oom_seen = fork.isolation, fork._cgroups, fork._oom_seen
            old_family, self.family = self.family, fork.family  # differ only if the fork was replaced
            self._sb._retain(self.family, self)
            self._sb._drop(old_family, self)
            self._step = max(self._step, fork._step)
            self._forks.remove(fork)
            self._forks.extend(fork._forks)  # its own forks become ours
            fork._chan, fork.closed, fork._forks = None, True, []
            self._sb._drop(fork.family, fork)
        for other in list(self._forks):
            other.close()
        self._forks = []

    # -- close --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (and this episode's forks); its working folder is deleted."""
        if self.closed:
            return
        for f in list(self._forks):
            f.close()
        self._forks = []
        self.closed = True
        chan = self._chan
        self._chan = None
        if chan is not None:
            try:
                chan.send({"op": "close"})
            except (ChannelClosed, OSError, ProtocolError):
                pass
            chan.close()
        if self._parent is not None and self in self._parent._forks:
            self._parent._forks.remove(self)
        self._sb._drop(self.family, self, pids=[self.pid])

    def __del__(self):
        # dropped without close(): closing our end makes the worker exit (EOF); its family's processes and
        # folder go at Sandbox.close(). No locks here - this may run inside any thread's garbage collection.
        chan = getattr(self, "_chan", None)
        if chan is not None and not self.closed:
            chan.close()

    def _check_open(self) -> None:
        if self.closed or self._chan is None:
            raise RuntimeError("this episode is closed; start a new one with sandbox.episode()")


def _result_from(msg: dict, calls: list, final: dict) -> StepResult:
    """Build a StepResult from the worker's `done` message, keeping only well-typed fields.

    Final only if final_answer() sent its answer during the step and the step did not fail (a failed step is
    undone, its answer with it)."""
    def s(key, limit=1_000_000):
        v = msg.get(key)
        return v[:limit] if isinstance(v, str) else None

    kind = msg.get("error_kind")
    error = s("error", 20_000)
    is_final = "answer" in final and not error
    return StepResult(
        stdout=s("stdout") or "",
        value=s("value"),
        error=error,
        error_kind=kind if kind in ERROR_KINDS else ("exception" if error else None),
        is_final=is_final,
        final_answer=final["answer"] if is_final else None,
        tool_calls=calls,
        rolled_back=msg.get("rolled_back") is True,
        state_lost=msg.get("state_lost") is True,
    )
