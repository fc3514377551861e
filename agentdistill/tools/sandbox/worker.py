"""The episode worker: the process that holds an episode's state and runs its steps.

Started by the fork server (`worker_main`), it isolates itself and then serves the host's commands on its
channel. The process holding the state is the "holder". A step with a snapshot (the default) runs in a
forked child of the holder, so the holder's memory is an untouched copy of the state before the step. The
child is forked ahead of time (the "standby", right after the previous step, while the model writes the next
action) and waits on a pipe for its code:

    holder H --(pre)fork--> standby S --"go" pipe: code--> S runs the code
      success: S clears its parent-death signal, reports, writes "c" on the verdict pipe; H exits; S holds
      failure: S hands its result to H ("e" + JSON) and exits, or is killed at the deadline, or crashes;
               H kills whatever S left, reports, and forks a new standby

Every step child is a child subreaper, so processes the code starts stay in its subtree and are killed
(threads or processes left running at the end of a step fail the step). Without a snapshot the holder runs
the code itself (faster; a failed step keeps its partial changes; leftover threads lose the episode).

fork(n) forks n candidate holders (through a middle process that exits at once, so they belong to the fork
server and outlive this holder), each with its own channel (sent to the host over SCM_RIGHTS) and its own
copy of the working folder; the host keeps one (`adopt`) and closes the rest.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

from . import isolation
from .channel import Channel, ChannelClosed, ProtocolError
from .runtime import Runtime

MAX_FORKS = 64
KILL_GRACE_S = 0.5  # a step child commits only before its deadline; the holder kills it this much later


def worker_main(sock: socket.socket, cfg: dict, report: isolation.IsolationReport, seccomp_filter) -> None:
    """Entry point in the forked child of the fork server. Never returns."""
    try:
        chan = Channel(sock)
        try:
            isolation.enter_worker(cfg, sock.fileno(), report, seccomp_filter)
        except Exception as e:
            chan.send({"type": "fatal", "error": f"isolation setup failed: {type(e).__name__}: {e}"})
            os._exit(2)
        worker = Worker(chan, cfg)
        chan.send({"type": "ready", "pid": os.getpid(), "workdir": os.getcwd(), "report": report.to_dict()})
        worker.loop()
    except BaseException:
        pass
    os._exit(0)


class Worker:
    def __init__(self, chan: Channel, cfg: dict):
        self.chan = chan
        self.cfg = cfg
        self.runtime = Runtime(cfg["tools"], cfg["output_limit"], cfg.get("memory_mb"))
        self.runtime.chan = chan
        self.armed_ppid = os.getppid()
        self.detached_from: int | None = None  # the parent we no longer die with, about to exit
        self.standby: tuple | None = None  # (pid, go pipe, verdict pipe) of the pre-forked step child
        self.want_standby = bool(cfg.get("snapshot", True))

    def loop(self) -> None:
        while True:
            if self.want_standby and self.standby is None and self._prefork():
                continue  # we are that standby child: it ran a step and now holds the state
            self._rearm_parent_death()
            try:
                msg = self.chan.recv()
            except (ChannelClosed, ProtocolError, OSError):
                os._exit(0)  # the host is gone (or mad): nobody will ever ask for this state again
            op = msg.get("op")
            if op == "run":
                self.op_run(msg)
            elif op == "fork":
                self.op_fork(msg)
            elif op == "close":
                shutil.rmtree(os.getcwd(), ignore_errors=True)
                os._exit(0)
            elif op == "ping":
                self.chan.send({"type": "pong", "pid": os.getpid()})
            # anything else (e.g. a tool result for a step that was killed) is stale: drop it

    def _rearm_parent_death(self) -> None:
        """After a hand-over (commit, fork) die with the new parent once the old one is gone.

        Never waits: while the old parent is still exiting we serve without a parent-death signal (the fork
        server's clean-up by uid still covers us) and check again at the next command."""
        ppid = os.getppid()
        if self.detached_from is not None:
            if ppid == self.detached_from:
                return
            self.detached_from = None
        if ppid != self.armed_ppid:
            isolation.set_pdeathsig(signal.SIGKILL)
            self.armed_ppid = ppid

    # -- run ----------------------------------------------------------------------------------------------
    def op_run(self, msg: dict) -> None:
        step, code = msg.get("step"), msg.get("code")
        timeout = float(msg.get("timeout") or self.cfg["timeout"])
        if not isinstance(code, str):
            self.chan.send({"type": "done", "step": step, "error": "no code given", "error_kind": "exception"})
            return
        if msg.get("snapshot", True):
            self._run_in_child(step, code, timeout)
        else:
            self._discard_standby()  # the state is about to change here: the copy would be stale
            self._run_here(step, code, timeout)

    def _run_here(self, step, code: str, timeout: float) -> None:
        self.runtime.step = _int(step) - 1
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # the code's orphans come back to us
        res = self.runtime.run(code, soft_timeout=timeout)
        problem = leftovers()
        kill_children()
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 0)
        if problem and "thread" in problem:
            # threads cannot be killed: this process is no longer a safe state holder
            res.update(error=problem + " The episode's variables were lost.", error_kind="exception", lost=True)
            self._send_done(step, res)
            os._exit(0)
        if problem:
            res.update(error=problem, error_kind="exception")
        self._send_done(step, res)

    # The step child is forked ahead of time ("standby"), right after the previous step, while the host is
    # busy elsewhere (the model is writing the next action): a step then costs no fork on its critical path.
    def _prefork(self) -> bool:
        """Fork the next step's child. Returns True in that child once it ran a step and became the holder."""
        go_r, go_w = os.pipe()  # holder -> child: the step to run (closing it unused discards the child)
        verdict_r, verdict_w = os.pipe()  # child -> holder: "c" (commit) or "e" + result JSON
        holder = os.getpid()
        self.want_standby = False
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(verdict_r)
            isolation.set_pdeathsig(signal.SIGKILL)
            if os.getppid() != holder:
                os._exit(1)
            try:
                order = json.loads(_read_all(go_r, None) or b"null")
            except ValueError:
                order = None
            os.close(go_r)
            if not isinstance(order, dict):
                os._exit(0)  # discarded
            self._step_child(holder, verdict_w, order["step"], order["code"], order.get("deadline"))
            return True
        os.close(go_r)
        os.close(verdict_w)
        self.standby = (pid, go_w, verdict_r)
        return False

    def _discard_standby(self) -> None:
        if self.standby is not None:
            pid, go_w, verdict_r = self.standby
            self.standby = None
            os.close(go_w)  # EOF: the child exits
            os.close(verdict_r)
            _reap(pid)

    def _step_child(self, holder: int, w: int, step, code: str, deadline: float | None) -> None:
        """In the step child: run the code; commit (become the holder) or report to the holder and exit."""
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # the code's orphans come back to us
        self.runtime.step = _int(step) - 1
        self.runtime.private_fds = [w]
        res = self.runtime.run(code)
        self.runtime.private_fds = []
        problem = leftovers()
        if isinstance(deadline, (int, float)) and time.monotonic() > deadline:
            # too late to commit: the holder kills us KILL_GRACE_S after the deadline, maybe mid-hand-over
            res.update(error="Timeout: the code ran longer than its time limit. Variables are as they were "
                             "before this step.", error_kind="timeout")
        if res["error_kind"] is None and not problem:
            isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 0)  # later orphans go to the fork server
            isolation.set_pdeathsig(0)  # we are about to outlive the old holder
            self.armed_ppid, self.detached_from = None, holder
            self._send_done(step, res)  # first: the host waits for this; the old holder's exit can wait
            try:
                os.write(w, b"c")
            except OSError:
                pass  # the old holder is already gone: we hold the state either way
            os.close(w)
            self.want_standby = True  # forked from the loop (constant stack depth across steps)
            return  # back to the loop as the new holder
        if problem:
            res.update(error=problem + " The step was undone.", error_kind="exception")
        try:  # the holder reports (after cleaning up): hand it the result, then vanish
            os.write(w, b"e" + json.dumps(res).encode())  # the holder reads while we write: no 64 KiB limit
        except Exception:  # the code may have broken json or the pipe: the holder then reports a crash
            pass
        os._exit(0)

    def _run_in_child(self, step, code: str, timeout: float) -> None:
        if self.standby is None and self._prefork():
            return  # (in the child, after its step: it is the holder now)
        pid, go_w, r = self.standby
        self.standby = None
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # if the child dies, its orphans come to us
        try:
            os.write(go_w, json.dumps({"step": step, "code": code, "deadline": time.monotonic() + timeout}).encode())
        except OSError:
            pass  # the standby died: reported below as a crash
        os.close(go_w)
        verdict, timed_out = b"", False
        if select.select([r], [], [], timeout + KILL_GRACE_S)[0]:
            verdict = os.read(r, 1)
        else:
            timed_out = True
        if verdict == b"c":
            os._exit(0)  # the child holds the state now
        report = _read_all(r, 5.0) if verdict == b"e" else b""
        os.close(r)
        if timed_out:
            _kill(pid)
        status = _reap(pid)
        kill_children()  # whatever the step started was re-parented to us (we are a subreaper)
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 0)
        if timed_out:
            res = {"error": f"Timeout: the code ran longer than {timeout:g}s and was stopped. "
                            "Variables are as they were before this step.", "error_kind": "timeout"}
        else:
            try:
                res = json.loads(report)
            except ValueError:
                res = None
            if not isinstance(res, dict):
                res = _death_result(status, self.cfg.get("memory_mb"))
        res["rolled_back"] = True
        self._send_done(step, res)
        self.want_standby = True  # the next step's child, forked while the host digests this result

    def _send_done(self, step, res: dict) -> None:
        msg = {"type": "done", "step": step, "pid": os.getpid()}
        msg.update(res)
        try:
            self.chan.send(msg)
        except (ChannelClosed, ProtocolError, OSError):
            os._exit(0)

    # -- fork -----------------------------------------------------------------------------------------------
    def op_fork(self, msg: dict) -> None:
        n = _int(msg.get("n"))
        if not 1 <= n <= MAX_FORKS:
            self.chan.send({"type": "forked", "error": f"n must be in 1..{MAX_FORKS}"})
            return
        # a standby shares our pages: every page touched while forking would be copied. Candidates usually
        # replace us (adopt), so drop it; a later snapshot step forks one on demand.
        self._discard_standby()
        self.want_standby = False
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(n)]
        # double fork: the middle process exits at once, so candidates are re-parented to the fork server
        # and outlive this holder (the host may keep any of them and close us)
        middle = os.fork()
        if middle == 0:
            for i, (_, theirs) in enumerate(pairs):
                if os.fork() == 0:
                    foreign = [a for a, _ in pairs] + [b for j, (_, b) in enumerate(pairs) if j != i]
                    self._become_candidate(os.getppid(), theirs, foreign)
                    return  # back to the loop as a candidate holder
            os._exit(0)
        for _, theirs in pairs:
            theirs.close()
        _reap(middle)
        self.chan.send({"type": "forked", "n": n}, fds=[ours.fileno() for ours, _ in pairs])
        for ours, _ in pairs:
            ours.close()

    def _become_candidate(self, middle: int, sock: socket.socket, foreign: list) -> None:
        for s in foreign:
            s.close()
        if self.standby is not None:  # the parent's standby is not ours
            os.close(self.standby[1])
            os.close(self.standby[2])
            self.standby = None
        self.want_standby = False  # candidates usually run once; a standby comes after a snapshot step
        self.chan.close()  # the parent's channel is not ours to use
        self.chan = self.runtime.chan = Channel(sock)
        self.armed_ppid, self.detached_from = None, middle  # re-armed (fork server) once the middle is gone
        # own copy of the working folder, next to the parent's (inside the family's Landlock-allowed folder)
        src = os.getcwd()
        dst = os.path.join(self.cfg["family_dir"], f"w{os.getpid()}")
        try:
            if os.listdir(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                os.mkdir(dst, 0o700)  # the usual case: nothing to copy
            os.chdir(dst)
            os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = dst
        except OSError as e:
            self.chan.send({"type": "fatal", "error": f"could not copy the working folder: {e}"})
            os._exit(1)
        self.chan.send({"type": "ready", "pid": os.getpid(), "workdir": dst})


def leftovers() -> str | None:
    """A description of threads or processes the step left running, or None.

    Threads count when they run Python code (they have a frame): the code could keep acting after the step.
    Threads a C library starts for itself (e.g. a thread pool created on import) are not the code's."""
    threads = max(len(sys._current_frames()), threading.active_count())
    if threads > 1:
        return f"The code left {threads - 1} thread(s) running; threads must finish within the step."
    if _children():
        return "The code left child processes running; they were killed."
    return None


def _children() -> list[int]:
    kids = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                kids.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return kids


def kill_children() -> None:
    """Kill every descendant (we are a subreaper: orphans of orphans come back to us) and reap them."""
    for _ in range(1000):
        kids = _children()
        if not kids:
            return
        for pid in kids:
            _kill(pid)
        for pid in kids:
            _reap(pid)
        time.sleep(0.0005)


def _read_all(fd: int, timeout: float | None) -> bytes:
    """Read until EOF (at most ~8 MiB; with a timeout: until then)."""
    chunks, deadline = [], None if timeout is None else time.monotonic() + timeout
    size = 0
    while deadline is None or (time.monotonic() < deadline
                               and select.select([fd], [], [], deadline - time.monotonic())[0]):
        chunk = os.read(fd, 1 << 16)
        size += len(chunk)
        if not chunk or size > 8 << 20:  # a result is never that big: the code wrote into our pipe
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap(pid: int) -> int | None:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _death_result(status: int | None, memory_mb) -> dict:
    """Describe how a step child died without reporting (crash, memory, exit)."""
    after = " Variables are as they were before this step."
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return {"error": f"The code's process was killed (SIGKILL), probably for exceeding the memory "
                             f"limit{f' of {memory_mb} MB' if memory_mb else ''}." + after,
                    "error_kind": "memory", "rolled_back": True}
        if sig == signal.SIGXCPU:
            return {"error": "The code used up its CPU time limit." + after, "error_kind": "timeout",
                    "rolled_back": True}
        return {"error": f"The code crashed the interpreter ({name})." + after, "error_kind": "crash",
                "rolled_back": True}
    code = os.WEXITSTATUS(status) if status is not None else "?"
    return {"error": f"The code ended the interpreter process (exit status {code}); do not call os._exit()."
                     + after, "error_kind": "crash", "rolled_back": True}


def _int(x) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return 0
