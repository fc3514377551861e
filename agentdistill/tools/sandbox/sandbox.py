"""`Sandbox`: the host object that owns the fork server and hands out isolated episodes.

    from agentdistill.tools.sandbox import Sandbox
    with Sandbox(tools={"search": search}, timeout=10.0, memory_mb=1024) as sb:
        with sb.episode() as ep:
            print(ep.run("hits = search('Paris')\\nlen(hits)").observation())
        print(sb.isolation.level)          # "full" as root on Linux >= 6.12; what is missing is listed

Settings apply to every episode: `timeout` (wall clock per step), `memory_mb` (address space per process, on
top of the preloaded runtime), `episode_memory_mb` (the episode and all its forks together; default twice
`memory_mb`), `output_limit` (characters of printed output kept per step), `snapshot` (default for run():
roll back failed steps), `cpu_seconds`, `max_file_mb`, `max_processes` (per episode with its forks),
`max_open_files`, `max_disk_mb` and `max_files` (the episode's folder, forks' copies included).
`pool_size` workers are kept started and waiting, so `episode()` returns at once.
`allow_unisolated=True` lets it start where no isolation layer can be enforced (never the default).
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from .channel import Channel, ChannelClosed, ChannelTimeout, ProtocolError
from .episode import Episode
from .forkserver import BOOT
from .isolation import IsolationReport

PROJECT_ROOT = str(Path(__file__).resolve().parents[3])  # the folder that holds the agentdistill package
RESERVED = {"final_answer", "print", "__builtins__", "__name__"}


class SandboxError(RuntimeError):
    """The sandbox could not start or lost its fork server."""


class Sandbox:
    def __init__(self, tools: dict[str, Callable] | list | None = None, timeout: float = 10.0,
                 memory_mb: int | None = 1024, output_limit: int = 20_000, *, snapshot: bool = True,
                 cpu_seconds: int | None = None, max_file_mb: int = 64, max_processes: int = 64,
                 max_open_files: int = 256, episode_memory_mb: int | None = None, max_disk_mb: int = 256,
                 max_files: int = 10_000, allow_unisolated: bool = False,
                 preload: tuple[str, ...] = ("numpy", "sympy"), serialize_tools: bool = False,
                 pool_size: int = 2, start_timeout: float = 120.0, _layers: dict | None = None):
        self.tools = _tool_dict(tools)
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if memory_mb is not None and memory_mb < 16:
            raise ValueError(f"memory_mb={memory_mb} is too small to run Python code; use >= 64 (or None)")
        if output_limit < 100:
            raise ValueError(f"output_limit={output_limit} is too small; use >= 100 characters")
        if episode_memory_mb is None and memory_mb is not None:
            episode_memory_mb = 2 * memory_mb
        if episode_memory_mb is not None and episode_memory_mb < 64:
            raise ValueError(f"episode_memory_mb={episode_memory_mb} is too small for a worker; use >= 128 (or None)")
        if max_disk_mb < 1 or max_files < 16:
            raise ValueError(f"max_disk_mb={max_disk_mb} / max_files={max_files}: an episode needs >= 1 MB and >= 16 "
                             "files for its folder")
        self.timeout, self.memory_mb, self.output_limit = float(timeout), memory_mb, int(output_limit)
        self.snapshot, self.serialize_tools = snapshot, serialize_tools
        self.tool_lock = threading.Lock()
        self._server_lock = threading.Lock()
        self._families: dict[int, int] = {}  # family id -> number of open Episode objects in it
        self._fam_lock = threading.RLock()  # episodes open and close from many threads
        self._episodes: "weakref.WeakSet[Episode]" = weakref.WeakSet()
        self._closed = False
        self.pool_size = max(int(pool_size), 0)  # started, isolated, idle workers kept ready for episode()
        self._pool: collections.deque = collections.deque()
        self._pool_cv = threading.Condition()
        self._pool_thread = None
        # _layers: switch single layers off (tests, debugging): uid, rlimits, namespaces, landlock, seccomp,
        # episode_limits (cgroup, folder quota)
        layers = {"uid": True, "rlimits": True, "namespaces": True, "seccomp": True, "landlock": True,
                  "episode_limits": True, **(_layers or {})}
        self.base_dir = tempfile.mkdtemp(prefix="agentdistill-sandbox-")
        os.chmod(self.base_dir, 0o711)  # episode uids may pass through, not list
        cfg = {
            "base_dir": self.base_dir, "uid_base": 1_000_000_000 + random.randrange(1_000_000) * 1000,
            "tools": {name: (getattr(fn, "__doc__", None) or "")[:2000] for name, fn in self.tools.items()},
            "timeout": self.timeout, "memory_mb": memory_mb, "output_limit": self.output_limit,
            "cpu_seconds": int(cpu_seconds or max(60, 6 * self.timeout)), "fsize_bytes": max_file_mb << 20,
            "nproc": max_processes, "nofile": max_open_files, "preload": list(preload), "snapshot": snapshot,
            "episode_memory_bytes": episode_memory_mb << 20 if episode_memory_mb else None,
            "max_disk_mb": int(max_disk_mb), "max_files": int(max_files),
            **layers,
        }
        self._start_server(cfg, start_timeout)
        # probe: one episode tells us what this machine enforces; refuse to run unprotected unless asked
        probe = self.episode()
        self.isolation: IsolationReport = probe.isolation
        probe.close()
        if self.isolation.level == "none" and not allow_unisolated:
            self.close()
            raise SandboxError("no isolation layer could be enforced on this machine ("
                               + "; ".join(self.isolation.missing) + "). Pass allow_unisolated=True to run "
                               "model-written code without protection anyway.")
        if self.pool_size:
            self._pool_thread = threading.Thread(target=self._refill, name="sandbox-pool", daemon=True)
            self._pool_thread.start()

    # -- warm pool: episode() takes a worker that is already isolated and waiting -----------------------------
    def _refill(self) -> None:
        while True:
            with self._pool_cv:
                while not self._closed and len(self._pool) >= self.pool_size:
                    self._pool_cv.wait()
                if self._closed:
                    return
            try:
                item = self._spawn()
            except SandboxError:
                return  # the server is gone; episode() will say so
            with self._pool_cv:
                if self._closed:
                    item[0].close()
                    return
                self._pool.append(item)

    # -- fork server ----------------------------------------------------------------------------------------
    def _start_server(self, cfg: dict, start_timeout: float) -> None:
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        self._log = open(os.path.join(self.base_dir, "forkserver.log"), "w+b")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, PROJECT_ROOT, str(server_end.fileno()), json.dumps(cfg)],
            pass_fds=[server_end.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=self._log, start_new_session=True, cwd=self.base_dir)
        server_end.close()
        self._server = Channel(host_end)
        try:
            ready = self._server.recv(timeout=start_timeout)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as e:
            self._log.seek(0)
            log = self._log.read().decode(errors="replace")[-2000:]
            self.close()
            raise SandboxError(f"the sandbox fork server did not start ({e}). Its output:\n{log}") from e
        if ready.get("type") != "ready":
            self.close()
            raise SandboxError(f"the sandbox fork server failed: {ready.get('error')}")
        self.server_pid = ready["pid"]
        self.view = ready.get("view") or ""  # prefix that turns a path inside the episodes into a host path
        self._cgroup_roots: set[str] = set()  # filled by _spawn; removed after the server is gone
        self._finalizer = weakref.finalize(self, _shutdown, self._proc, self._server, self.base_dir,
                                           self._cgroup_roots)
        atexit.register(self._finalizer)

    def _spawn(self) -> tuple[Channel, dict, dict]:
        """A fresh worker: (channel, spawn info, its ready message)."""
        if self._closed:
            raise SandboxError("the sandbox is closed")
        with self._server_lock:
            try:
                self._server.send({"op": "spawn"})
                info, fds = self._server.recv(timeout=30.0, with_fds=True)
            except (ChannelClosed, ChannelTimeout, ProtocolError, OSError) as e:
                raise SandboxError(f"the sandbox fork server is gone ({e}); create a new Sandbox") from e
        if info.get("type") != "spawned" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise SandboxError(f"could not start an episode: {info.get('error') or info}")
        with self._fam_lock:
            self._families[info["family"]] = self._families.get(info["family"], 0)
        self._cgroup_roots.update(os.path.dirname(p) for p in (info.get("cgroups") or {}).values())
        chan = Channel(socket.socket(fileno=fds[0]))
        try:
            ready = chan.recv(timeout=30.0)
        except (ChannelClosed, ChannelTimeout, ProtocolError) as e:
            chan.close()
            self._release(info["family"], [info["pid"]])
            raise SandboxError(f"an episode worker died while starting ({e})") from e
        if ready.get("type") != "ready":
            chan.close()
            self._release(info["family"], [info["pid"]])
            raise SandboxError(f"could not start an episode: {ready.get('error')}")
        with self._fam_lock:
            self._families[info["family"]] = self._families.get(info["family"], 0) + 1
        return chan, info, ready

    def _release(self, family: int, pids: list) -> None:
        """Kill a family's processes (all of its uid when we are root) and delete its folder."""
        with self._fam_lock:
            self._families.pop(family, None)
        self._server_send({"op": "release", "family": family, "pids": [p for p in pids if isinstance(p, int)]})

    def _retain(self, family: int, episode: Episode) -> None:
        with self._fam_lock:
            self._families[family] = self._families.get(family, 0) + 1
        self._episodes.add(episode)

    def host_path(self, path: str) -> str:
        """Where a path inside the episodes (a working folder) lies for the host."""
        return self.view + path

    def _drop(self, family: int, episode: Episode, pids: list | None = None) -> None:
        with self._fam_lock:
            known = family in self._families
            left = self._families.get(family, 0) - 1
            if left > 0:
                self._families[family] = left
        if left > 0:
            if pids:  # the episode's own worker, in case it ignored "close"
                self._server_send({"op": "kill", "pids": pids})
        elif known:
            self._release(family, pids or [])

    def _server_send(self, msg: dict) -> None:
        if self._closed:
            return
        with self._server_lock:
            try:
                self._server.send(msg)
            except (ChannelClosed, OSError):
                pass

    # -- public -------------------------------------------------------------------------------------------
    def episode(self) -> Episode:
        """A new episode (its own worker process, empty namespace, empty working folder)."""
        with self._pool_cv:
            item = self._pool.popleft() if self._pool else None
            self._pool_cv.notify()
        chan, info, ready = item or self._spawn()
        ep = Episode(self, chan, ready["pid"], ready["workdir"], info["family"], ready.get("report", {}),
                     cgroups=info.get("cgroups"))
        self._episodes.add(ep)
        return ep

    def close(self) -> None:
        """Kill every episode and the fork server; delete all working folders."""
        if self._closed:
            return
        for ep in list(self._episodes):
            try:
                ep.close()
            except Exception:
                pass
        with self._pool_cv:
            self._closed = True
            self._pool_cv.notify_all()
            for chan, _, _ in self._pool:
                chan.close()
            self._pool.clear()
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        else:
            _shutdown(getattr(self, "_proc", None), getattr(self, "_server", None), self.base_dir,
                      getattr(self, "_cgroup_roots", None))
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
        if self._pool_thread is not None and self._pool_thread is not threading.current_thread():
            self._pool_thread.join(timeout=5)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shutdown(proc, server: Channel | None, base_dir: str, cgroup_roots: set | None = None) -> None:
    """Closing the server's channel makes it kill every episode and exit; then remove the folders (and the
    episode cgroups, should the server have been killed before it removed them itself)."""
    if server is not None:
        server.close()
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(base_dir, ignore_errors=True)
    for root in cgroup_roots or ():
        for _ in range(50):  # killed processes leave their groups a moment later
            try:
                for name in os.listdir(root):
                    if name.startswith("f") and name[1:].isdigit():
                        os.rmdir(os.path.join(root, name))
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def _tool_dict(tools) -> dict[str, Callable]:
    if tools is None:
        return {}
    if isinstance(tools, dict):
        items = list(tools.items())
    elif isinstance(tools, (list, tuple)):
        items = [(getattr(t, "name", None) or getattr(t, "__name__", None), t) for t in tools]
    else:
        raise TypeError("tools must be a dict {name: callable} or a list of callables (dspy.Tool works)")
    out = {}
    for name, fn in items:
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED:
            raise ValueError(f"tool name {name!r} is not usable inside the sandbox: use a Python identifier "
                             f"other than {sorted(RESERVED)}")
        if not callable(fn):
            raise TypeError(f"tool {name!r} is not callable")
        out[name] = fn
    return out
