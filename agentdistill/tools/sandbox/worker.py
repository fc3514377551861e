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
(processes left running at the end of a step fail the step; exited ones are reaped). A step child refuses
itself signals to its holder before it runs code (`syscalls.holder_guard`): a step that tries to kill the
state before it fails, deterministically. Without a snapshot the holder runs the code itself (faster; a failed
step keeps its partial changes; the code can kill its own holder, losing the state).

fork(n) forks n candidate holders (through a middle process that exits at once, so they belong to the fork
server and outlive this holder), each with its own channel (sent to the host over SCM_RIGHTS), its own copy
of the working folder and its own Landlock domain, nested in its parent's. Folders nest the same way:

    family/            the episode's area (its Landlock read-write folder)
      w0/              its working folder
      c<pid>/          a fork's area: read-write for the fork (and its parent), out of reach of its siblings
        w/             the fork's working folder (a copy of the parent's)
        c<pid2>/       the fork's own forks

The host keeps one fork (`adopt`) and closes the rest. Landlock nests at most 16 domains: a fork deeper than
that shares its parent's domain, and its isolation record says so.
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
from .syscalls import holder_guard

MAX_FORKS = 64
KILL_GRACE_S = 0.5  # a step child commits only before its deadline; the holder kills it this much later
MAX_GUARDS = 1500  # holder guards stacked by successive steps (the kernel allows 32768 filter instructions)


def worker_main(sock: socket.socket, cfg: dict, report: isolation.IsolationReport, seccomp_filter) -> None:
    """Entry point in the forked child of the fork server. Never returns."""
    try:
        chan = Channel(sock)
        try:
            isolation.enter_worker(cfg, sock.fileno(), report, seccomp_filter)
        except Exception as e:
            chan.send({"type": "fatal", "error": f"isolation setup failed: {type(e).__name__}: {e}"})
            os._exit(2)
        try:
            worker = Worker(chan, cfg, report)
        except Exception as e:
            chan.send({"type": "fatal", "error": f"worker setup failed: {type(e).__name__}: {e}"})
            os._exit(2)
        chan.send({"type": "ready", "pid": os.getpid(), "workdir": os.getcwd(), "report": report.to_dict()})
        worker.loop()
    except BaseException:
        pass
    os._exit(0)


class Worker:
    def __init__(self, chan: Channel, cfg: dict, report: isolation.IsolationReport):
        self.chan = chan
        self.cfg = cfg
        self.report = report
        self.area = cfg["family_dir"]  # our Landlock read-write folder: working folder + forks' areas
        self.guarded: set[int] = set()  # pids our stacked holder guards refuse to signal (dead holders)
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
                if self.area != self.cfg["family_dir"]:
                    try:
                        os.rmdir(self.area)  # unless forks of ours still have their areas in it
                    except OSError:
                        pass
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
        stopped = kill_children()
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 0)
        if (problem and "thread" in problem) or not stopped:
            # a thread cannot be killed (nor a child we may not signal): this is no longer a safe state holder
            problem = problem or "A process the code started could not be stopped."
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
        self.want_standby = False
        for _ in range(8):
            standby = self._fork_standby()
            if standby is True:
                return True
            if standby[0] not in self.guarded:
                self.standby = standby
                return False
            # the pid of a dead holder came round again (pid_max is small): our guards would not let us kill
            # this child at its deadline. Discard it (it exits by itself) and fork another.
            os.close(standby[1])
            os.close(standby[2])
            _reap(standby[0])
        return False  # no standby: the step forks its child on demand

    def _fork_standby(self):
        """(pid, go pipe, verdict pipe) in the holder; True in the child once it ran a step and holds."""
        go_r, go_w = os.pipe()  # holder -> child: the step to run (closing it unused discards the child)
        verdict_r, verdict_w = os.pipe()  # child -> holder: "c" (commit) or "e" + result JSON
        holder = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.close(verdict_r)
            isolation.set_pdeathsig(signal.SIGKILL)
            if os.getppid() != holder:
                os._exit(1)
            self._guard(holder)
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
        return pid, go_w, verdict_r

    def _guard(self, holder: int) -> None:
        """In a step child: refuse ourselves (and the code) signals to the holder of the state."""
        if not self.report.holder_guard or len(self.guarded) >= MAX_GUARDS:
            return  # no seccomp here, or an episode of very many steps: the holder is then in reach
        try:
            holder_guard(holder).load()
            self.guarded.add(holder)
        except OSError:
            pass

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
        if self.standby is None:
            self._send_done(step, {"error": "The sandbox could not start this step's process; try again.",
                                   "error_kind": "crash", "rolled_back": True})
            self.want_standby = True
            return
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
        if not kill_children():  # whatever the step started was re-parented to us (we are a subreaper)
            self._send_done(step, {"error": "A process the code started could not be stopped. The episode's "
                                            "variables were lost.", "error_kind": "crash", "lost": True})
            os._exit(0)
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
        self.report = isolation.IsolationReport.from_dict(self.report.to_dict())
        self.report.missing = list(self.report.missing)
        self.report.fork_depth += 1
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
        # own area inside the parent's (still in the parent's Landlock domain), with a copy of its folder
        src = os.getcwd()
        area = os.path.join(self.area, f"c{os.getpid()}")
        dst = os.path.join(area, "w")
        try:
            os.mkdir(area, 0o700)
            if os.listdir(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                os.mkdir(dst, 0o700)  # the usual case: nothing to copy
            os.chdir(dst)
            os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = dst
        except OSError as e:
            self.chan.send({"type": "fatal", "error": f"could not copy the working folder: {e}"})
            os._exit(1)
        self.area = area
        _reopen_inherited(src, dst, keep={self.chan.fileno()})
        self._enter_own_domain()
        self.chan.send({"type": "ready", "pid": os.getpid(), "workdir": dst, "report": self.report.to_dict()})

    def _enter_own_domain(self) -> None:
        """A Landlock domain nested in the parent's: read-write only our area; signals only to it and below."""
        rep = self.report
        if not rep.own_domain:
            return  # no Landlock (or no signal scoping) to begin with: already listed as missing
        try:
            isolation.landlock_restrict(self.area, self.cfg["ro_paths"], isolation.IsolationReport())
        except OSError as e:
            rep.own_domain = False
            why = ("Landlock nests at most 16 domains" if e.errno == 7 else os.strerror(e.errno or 0))
            rep.missing.append(f"own domain: fork {rep.fork_depth} levels deep shares its parent's Landlock "
                               f"domain ({why}): its siblings can signal it and reach its folder")


def _reopen_inherited(src: str, dst: str, keep: set) -> None:
    """Point descriptors of files in the parent's folder `src` at the same files in our copy `dst`.

    A fork shares its parent's open files (offset included), and Landlock checks only at open time: without
    this, a fork writing to a file the parent's code left open would write the parent's file. Pipes, sockets,
    memfds and shared memory the code made before the fork stay shared (see README)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if not target.startswith(src + "/"):
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            flags, pos = int(info["flags"].strip(), 8), int(info["pos"].strip())
            new = os.open(dst + target[len(src):], flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC))
        except (OSError, KeyError, ValueError):
            try:  # a file we cannot mirror (e.g. deleted): better closed than shared with the parent
                if os.readlink(f"/proc/self/fd/{fd}").startswith(src + "/"):
                    os.close(fd)
            except OSError:
                pass
            continue
        if pos and not flags & os.O_APPEND:
            os.lseek(new, pos, os.SEEK_SET)
        os.dup2(new, fd, inheritable=not flags & os.O_CLOEXEC)
        os.close(new)


def leftovers() -> str | None:
    """A description of threads or processes the step left running, or None.

    Seccomp refuses threads; where it is missing, every thread but ours counts (one sleeping in C code has no
    Python frame, but would live on in the holder). Children that exited are reaped, not counted."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        tasks = []
    threads = max(len(sys._current_frames()), threading.active_count(), len(tasks))
    if threads > 1:
        return f"The code left {threads - 1} thread(s) running; threads must finish within the step."
    reap_exited()
    if _children(tasks):
        return "The code left child processes running; they were killed."
    return None


def reap_exited() -> None:
    """Collect children that have exited (zombies); running ones are left alone."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _children(tasks: list | None = None) -> list[int]:
    kids = []
    try:
        for tid in tasks or os.listdir("/proc/self/task"):
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY)  # os.read: runs after every step
            try:
                kids.extend(int(p) for p in os.read(fd, 1 << 16).split())
            finally:
                os.close(fd)
    except OSError:
        pass
    return kids


def kill_children() -> bool:
    """Kill every descendant (we are a subreaper: orphans of orphans come back to us) and reap them.

    False if one cannot be killed: it got the pid of a dead holder our guards refuse to signal."""
    for _ in range(1000):
        kids = _children()
        if not kids:
            return True
        killed = [pid for pid in kids if _kill(pid)]
        if len(killed) < len(kids):
            return False
        for pid in killed:
            _reap(pid)
        time.sleep(0.0005)
    return True


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


def _kill(pid: int) -> bool:
    """SIGKILL; False only when we may not (PermissionError), True when it is dead or gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except PermissionError:
        return False
    except OSError:
        pass
    return True


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
