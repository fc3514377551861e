"""The fork server: a clean interpreter that has imported numpy/sympy once and forks episode workers.

Started by `Sandbox` as `python -I -c BOOT <fd> <config-json>` with a minimal environment (the host's
secrets never reach it) in its own session. It never runs agent code. It enters a network namespace (and a
private /proc) once; each `spawn` request forks a worker that isolates itself further (worker.py) and
hands the host one end of a fresh channel over SCM_RIGHTS. When the host goes away (its channel closes,
including when the host is killed) the server kills every episode's processes and exits.

Each spawn starts a family (an episode and the forks it will make): its own uid, cgroup (memory, processes)
and folder - a tmpfs with a size and a file count, mounted in the server's mount namespace, so the host sees
it through /proc/<server pid>/root (`view` in the ready message).

Requests (host -> server): {"op": "spawn"}, {"op": "kill", "pids": [...]} (those processes and what they
started), {"op": "release", "family": id, "pids": [...]} (kill a family's processes, delete its folder).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import shutil
import signal
import socket
import sys

from . import isolation
from .cgroups import EpisodeCgroups
from .channel import Channel, ChannelClosed, ProtocolError
from .worker import worker_main

# Executed by `python -I -c`: make the sandbox package importable without running agentdistill/__init__.py
# and agentdistill/tools/__init__.py (they may import heavy libraries such as torch).
BOOT = """
import sys, types
root = sys.argv[1]
for name, sub in (("agentdistill", ""), ("agentdistill.tools", "/tools")):
    m = types.ModuleType(name); m.__path__ = [root + "/agentdistill" + sub]; sys.modules[name] = m
from agentdistill.tools.sandbox.forkserver import main
main(int(sys.argv[2]), sys.argv[3])
"""


class ForkServer:
    def __init__(self, chan: Channel, cfg: dict):
        self.chan = chan
        self.cfg = cfg
        self.report = isolation.IsolationReport()
        self.families: dict[int, dict] = {}  # family id -> {"uid", "dir", "quota"}
        self.pending: list[tuple] = []  # released families still to kill and delete (family, uid, dir, quota)
        self.cgroups: EpisodeCgroups | None = None
        self.busy_cgroups: list[int] = []  # families whose groups still held a process at release
        self.counter = 0
        self.is_root = os.geteuid() == 0

    def start(self) -> None:
        self.cfg["ro_paths"] = isolation.readonly_paths()
        if self.cfg.get("namespaces", True):
            isolation.enter_server_namespaces(self.report, self.cfg["ro_paths"],
                                              os.path.join(self.cfg["base_dir"], "staging"))
        else:
            self.report.missing.append("network namespace: disabled")
        for mod in self.cfg.get("preload", []):
            try:
                importlib.import_module(mod)
            except Exception as e:  # a missing optional library only means a slower first import in the episode
                self.report.missing.append(f"preload {mod}: {e}")
        self.seccomp = None
        if self.cfg.get("seccomp", True):
            try:
                from .syscalls import compile_filter

                self.seccomp = compile_filter()
            except Exception as e:
                self.report.missing.append(f"seccomp: {type(e).__name__}: {e}")
        else:
            self.report.missing.append("seccomp: disabled")
        if not self.is_root:
            self.report.missing.append("uid: not root, so episodes run as the host's user")
        elif not self.cfg.get("uid", True):
            self.report.missing.append("uid: disabled")
        if self.cfg.get("episode_limits", True):
            self.cgroups, why = EpisodeCgroups.create(os.getpid())
            if why:
                self.report.missing.append(why)
            if not self.report.proc_hidden:  # the tmpfs needs our own mount namespace (root)
                self.report.missing.append("folder quota: needs root (a tmpfs in the server's mount namespace); "
                                           "an episode's files are limited per file only")
        else:
            self.report.missing.append("episode limits: disabled")
        if self.cfg.get("memory_mb"):
            self.as_bytes = _vm_size() + int(self.cfg["memory_mb"]) * 1024 * 1024
        else:
            self.as_bytes = None
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # retired holders' successors come back to us
        for name in ("agentdistill", "agentdistill.tools"):  # nothing more from the project can be imported
            if name in sys.modules:
                sys.modules[name].__path__ = []
        gc.collect()
        gc.freeze()  # keep the imported objects' pages shared with the workers (no refcount-GC writes)
        # our mounts (the families' tmpfs) are private: the host reaches them through our root
        view = f"/proc/{os.getpid()}/root" if self.report.proc_hidden else ""
        self.chan.send({"type": "ready", "pid": os.getpid(), "report": self.report.to_dict(),
                        "as_bytes": self.as_bytes, "view": view})

    def serve(self) -> None:
        while True:
            # releases (killing a family's uid, deleting its folder) wait until no request is pending:
            # starting an episode is what someone is waiting for
            while self.pending and not select.select([self.chan.sock], [], [], 0)[0]:
                self._release_now(*self.pending.pop(0))
            try:
                msg = self.chan.recv()
            except (ChannelClosed, ProtocolError, OSError):
                break
            op = msg.get("op")
            try:
                if op == "spawn":
                    self.spawn()
                elif op == "kill":
                    for pid in msg.get("pids", []):
                        self.kill_worker(pid)
                elif op == "release":
                    self.release(int(msg["family"]), msg.get("pids", []))
            except Exception as e:  # report, keep serving: one bad request must not take every episode down
                try:
                    self.chan.send({"type": "error", "error": f"{type(e).__name__}: {e}"})
                except Exception:
                    break
        for fam in list(self.families):  # the host is gone (or closed us): nothing of it may live on
            self.release(fam, [])
        while self.pending:
            self._release_now(*self.pending.pop(0))
        shutil.rmtree(self.cfg["base_dir"], ignore_errors=True)
        if self.cgroups is not None:
            for _ in range(50):  # killed processes leave their groups a moment later
                if not self.cgroups.families:
                    break
                self.cgroups.close()
                select.select([], [], [], 0.02)
            self.cgroups.close()
        os._exit(0)

    def spawn(self) -> None:
        self.counter += 1
        fam = self.counter
        uid = self.cfg["uid_base"] + fam if self.is_root and self.cfg.get("uid", True) else None
        family_dir = os.path.join(self.cfg["base_dir"], f"f{fam}")
        workdir = os.path.join(family_dir, "w0")
        os.mkdir(family_dir, 0o700)
        quota = self.report.proc_hidden and self.cfg.get("episode_limits", True)
        if quota:
            isolation.mount_quota(family_dir, self.cfg["max_disk_mb"], self.cfg["max_files"], uid)
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(family_dir, uid, uid)
            os.chown(workdir, uid, uid)
        self.families[fam] = {"uid": uid, "dir": family_dir, "quota": quota}
        groups = None
        if self.cgroups is not None:
            groups = self.cgroups.add_family(fam, self.cfg.get("episode_memory_bytes"), self.cfg.get("nproc"))
        wcfg = dict(self.cfg, uid=uid, family_dir=family_dir, workdir=workdir, server_pid=os.getpid(),
                    as_bytes=self.as_bytes, cgroups=groups)
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                host_end.close()
                self.chan.close()
                report = isolation.IsolationReport(**{k: v for k, v in vars(self.report).items()})
                report.missing = list(self.report.missing)
                if groups:
                    report.episode_memory_mb = (self.cfg.get("episode_memory_bytes") or 0) >> 20 or None
                    report.episode_processes = self.cfg.get("nproc")
                if quota:
                    report.max_disk_mb, report.max_files = self.cfg["max_disk_mb"], self.cfg["max_files"]
                worker_main(worker_end, wcfg, report, self.seccomp)
            finally:
                os._exit(1)
        worker_end.close()
        self.chan.send({"type": "spawned", "pid": pid, "family": fam, "uid": uid, "workdir": workdir,
                        "cgroups": groups}, fds=[host_end.fileno()])
        host_end.close()

    def kill_worker(self, pid) -> None:
        """Kill `pid` and what it started, only if it is one of ours: a pid reported by a worker may be a lie
        (e.g. the host's). Its descendants go first: a family shared with other episodes (forks) stays alive,
        so nothing of this one may be left running in it."""
        if not isinstance(pid, int) or pid <= 1:
            return
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            ppid, uid = int(status["PPid"].split()[0]), int(status["Uid"].split()[1])
        except (OSError, KeyError, ValueError, IndexError):
            return
        ours = ppid == os.getpid() or any(uid == f["uid"] for f in self.families.values() if f["uid"] is not None)
        if ours:
            for _ in range(10):  # a process that forks while we collect: sweep again
                tree = _descendants(pid)
                for p in tree:
                    _kill(p)
                if not tree:
                    break
            _kill(pid)

    def release(self, fam: int, pids: list) -> None:
        for pid in pids:
            self.kill_worker(pid)
        info = self.families.pop(fam, None)
        if info is not None:
            self.pending.append((fam, info["uid"], info["dir"], info["quota"]))

    def _release_now(self, fam: int, uid: int | None, family_dir: str, quota: bool) -> None:
        if uid is not None:
            _kill_uid(uid)
        if quota:
            try:
                isolation.unmount(family_dir)  # the tmpfs and its files are gone with it
            except OSError:
                pass
        shutil.rmtree(family_dir, ignore_errors=True)
        if self.cgroups is not None:
            self.busy_cgroups = [f for f in self.busy_cgroups if not self.cgroups.remove_family(f)]
            if not self.cgroups.remove_family(fam):
                self.busy_cgroups.append(fam)  # killed processes leave a moment later: next release


def _kill(pid) -> None:
    try:
        if isinstance(pid, int) and pid > 1:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found, then theirs), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:
            pass
    return out


def _kill_uid(uid: int) -> None:
    """Kill every process of `uid`: a helper becomes that uid and sends kill(-1, SIGKILL)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(100):  # a fork bomb may race the first sweeps
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # SIGCHLD is ignored: the kernel reaped it, waitpid returned when it ended


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main(fd: int, cfg_json: str) -> None:
    chan = Channel(socket.socket(fileno=fd))
    server = ForkServer(chan, json.loads(cfg_json))
    try:
        server.start()
    except Exception as e:
        if server.cgroups is not None:
            server.cgroups.close()
        try:
            chan.send({"type": "fatal", "error": f"{type(e).__name__}: {e}"})
        except (ChannelClosed, OSError):
            pass  # the host is gone already
        os._exit(2)
    server.serve()
