"""`serve_process`: the OpenAI-compatible server (agentdistill.lm.server) in a child process that dies with its parent.

    from agentdistill.lm.server_process import serve_process
    with serve_process({"teacher": "qwen2.5-coder-0.5b-instruct", "student": "runs/sft/model"}) as srv:
        teacher, student = srv.lm("teacher", temperature=0.0), srv.lm("student")   # server_lm(name, srv.url, ...)

The child process (`python -m agentdistill.lm.server_process --parent-pid PID --ready-file F ...`, started by
`serve_process`) dies with its parent: Linux's PR_SET_PDEATHSIG (SIGTERM, default action: immediate exit even
inside native code) set at startup, a check that the parent is still the expected pid right after (it may have
died before), and a watchdog thread that exits when `os.getppid()` changes (any platform). PDEATHSIG fires when
the *thread* that forked the child ends, so the parent forks from its main thread or from one long-lived spawner
thread, never from a caller's short-lived worker thread. The child reports its bound port (port=0: the OS picks)
and any loading error in the ready file (JSON, written atomically); its stdout/stderr go to a log file (no pipe to
fill up), whose tail is quoted when it fails to start.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future
from pathlib import Path

from agentdistill.lm.server import ChatServer, ModelLoadError, _as_models, load_engines


class ServerStartError(RuntimeError):
    """A server process (serve_process) exited, reported a loading error, or did not answer in time."""


# --- a server process that cannot outlive its parent ----------------------------------------------------------

_RUNNING: set["ServerProcess"] = set()
_RUNNING_LOCK = threading.Lock()
_SPAWNER: dict = {}  # {"queue": queue.Queue, "thread": Thread}: forks children for short-lived caller threads
_SPAWNER_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


class ServerProcess:
    """A running `python -m agentdistill.lm.server_process` child: `.url` (the api_base), `.lm(name)`, `.stop()`.

    Built by `serve_process`. Stopped by `.stop()`, by leaving its `with` block, at interpreter exit (atexit),
    and - whatever kills the parent, SIGKILL included - by the child itself when its parent dies.
    """

    def __init__(self, process: subprocess.Popen, url: str, models: dict[str, str], log_path: Path,
                 workdir: Path):
        self.process, self.url, self.models = process, url, dict(models)
        self.log_path, self._workdir, self._owner = log_path, workdir, os.getpid()
        self._stop_lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def alive(self) -> bool:
        return self.process.poll() is None

    def lm(self, name: str | None = None, **lm_kwargs):
        """`server_lm(name, self.url, server="agentdistill", **lm_kwargs)`: the client a vLLM user builds."""
        from agentdistill.lm.remote import server_lm

        name = self.names[0] if name is None else name
        if name not in self.models:
            raise ValueError(f"this server serves {', '.join(map(repr, self.models))}, not {name!r}")
        return server_lm(name, self.url, server="agentdistill", **lm_kwargs)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; idempotent."""
        with self._stop_lock:
            if os.getpid() == self._owner:  # a forked copy of the parent does not own the child
                _terminate(self.process, timeout)
            with _RUNNING_LOCK:
                _RUNNING.discard(self)
            _remove(self._workdir)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"ServerProcess({self.url!r}, models={self.names}, pid={self.pid}, {state})"


def serve_process(models, *, backend: str = "llama.cpp", host: str = "127.0.0.1", port: int = 0,
                  threads: int | None = None, n_ctx: int = 8192, startup_timeout: float = 300.0,
                  prefill: bool = True, verbose: bool = False) -> ServerProcess:
    """Start an OpenAI-compatible server over local models in a child process; returns once /health answers.

    Args:
        models: a shipped name / path (served under its short name), or {served name: name_or_path}, e.g.
            {"base": "smollm2-135m-instruct", "student": "runs/sft/student.gguf"}.
        backend: "llama.cpp" (default: the fast CPU engine) or "transformers".
        host, port: where to bind (port=0: a free port the OS picks; `.url` says which).
        threads, n_ctx: for `local_lm` in the child.
        startup_timeout: seconds to wait for the models to load and /health to answer.
    Raises:
        ModelLoadError: a bad served name (before anything starts).
        ServerStartError: a model failed to load (the child's message), the child exited, or it did not answer
            within startup_timeout (it is killed; the message ends with its log's tail).

    Example:
        >>> with serve_process({"smol": "smollm2-135m-instruct"}) as srv:
        ...     texts = agentdistill.lm.sample(srv.lm("smol"), messages, n=4, temperature=0.7)
    """
    table = _as_models(models)
    workdir = Path(tempfile.mkdtemp(prefix="agentdistill-server-"))
    ready, log_path = workdir / "ready.json", workdir / "server.log"
    command = [sys.executable, "-m", "agentdistill.lm.server_process", "--backend", backend, "--host", host,
               "--port", str(port), "--n-ctx", str(n_ctx), "--parent-pid", str(os.getpid()),
               "--ready-file", str(ready)]
    if threads is not None:
        command += ["--threads", str(threads)]
    if not prefill:
        command.append("--no-prefill")
    if verbose:
        command.append("--verbose")
    for name, path in table.items():
        command += ["--model", f"{name}={path}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports the same agentdistill
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        process = _spawn(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    what = f"the agentdistill server for {', '.join(f'{n}={p}' for n, p in table.items())} (pid {process.pid})"
    try:
        url = _wait_ready(process, ready, log_path, time.monotonic() + startup_timeout, what, startup_timeout)
    except BaseException:
        _terminate(process, 5.0)
        _remove(workdir)
        raise
    server = ServerProcess(process, url, table, log_path, workdir)
    with _RUNNING_LOCK:
        _RUNNING.add(server)
    return server


def _wait_ready(process, ready: Path, log_path: Path, deadline: float, what: str, timeout: float) -> str:
    report = None
    while report is None:
        if ready.is_file():
            report = json.loads(ready.read_text())
        elif process.poll() is not None:
            time.sleep(0.1)  # the report may land just before the exit
            if ready.is_file():
                continue
            raise ServerStartError(f"{what} exited with status {process.returncode} before it was ready; "
                                   f"its log ends with:\n{_tail(log_path)}")
        elif time.monotonic() > deadline:
            raise ServerStartError(f"{what} did not load its models within startup_timeout={timeout:g}s; "
                                   f"its log ends with:\n{_tail(log_path)}")
        else:
            time.sleep(0.05)
    if report.get("error"):
        message = f"{what} failed to start: {report['error']}"
        if report.get("kind") != "ModelLoadError":  # unexpected: the traceback is in the log
            message += f"\nits log ends with:\n{_tail(log_path)}"
        raise ServerStartError(message)
    url = report["url"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    health = url.rsplit("/v1", 1)[0] + "/health"
    while True:
        try:
            with opener.open(health, timeout=5) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            raise ServerStartError(f"{what} exited with status {process.returncode} after binding {url}; "
                                   f"its log ends with:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} bound {url} but {health} did not answer within "
                                   f"startup_timeout={timeout:g}s; its log ends with:\n{_tail(log_path)}")
        time.sleep(0.1)


def _spawn(command, **kwargs) -> subprocess.Popen:
    """Popen from a thread that lives as long as this process (PR_SET_PDEATHSIG fires when the forking thread
    ends): the main thread itself, else one daemon spawner thread."""
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(command, **kwargs)
    import queue

    with _SPAWNER_LOCK:
        if not _SPAWNER:
            jobs: queue.Queue = queue.Queue()

            def spawner():
                while True:
                    args, kw, future = jobs.get()
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(subprocess.Popen(args, **kw))
                        except BaseException as exc:  # noqa: BLE001
                            future.set_exception(exc)

            thread = threading.Thread(target=spawner, name="agentdistill-server-spawner", daemon=True)
            thread.start()
            _SPAWNER.update(queue=jobs, thread=thread)
    future: Future = Future()
    _SPAWNER["queue"].put((command, kwargs, future))
    return future.result()


def _terminate(process: subprocess.Popen, timeout: float) -> None:
    if process.poll() is None:
        try:
            process.terminate()
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout)  # reap it: no zombie left behind
    except subprocess.TimeoutExpired:
        pass


def _remove(workdir: Path) -> None:
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


@atexit.register
def _stop_all() -> None:
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for server in running:
        server.stop(timeout=5.0)


# --- the child: python -m agentdistill.lm.server --------------------------------------------------------------

def _die_with_parent(parent: int) -> None:
    """Exit when `parent` dies: PR_SET_PDEATHSIG (Linux; SIGTERM's default action kills even inside native code),
    then a check that it has not died already, then a watchdog thread on os.getppid() (any POSIX system)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # an ignored SIGTERM would be inherited across exec
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns this process: a terminal's Ctrl-C is its call
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still covers it
    if os.getppid() != parent:  # it died before prctl took effect (we were reparented)
        os._exit(1)

    def watchdog():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, name="agentdistill-parent-watchdog", daemon=True).start()


def _model_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected SERVED_NAME=NAME_OR_PATH, got {text!r}")
    return name, path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agentdistill.lm.server_process", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=_model_arg, action="append", required=True, metavar="SERVED=NAME_OR_PATH",
                   help="a model to serve under a name (repeatable)")
    p.add_argument("--backend", choices=["transformers", "llama.cpp"], default="llama.cpp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port (reported in --ready-file)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n-ctx", type=int, default=8192)
    p.add_argument("--no-prefill", dest="prefill", action="store_false")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process (our parent) dies")
    p.add_argument("--ready-file", default=None, help="write {url, pid, models} or {error} here (JSON)")
    return p


def _report(path: str | None, payload: dict) -> None:
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)  # atomic: the parent never reads half a report


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    models = {}
    for name, path in args.model:
        if name in models:
            _report(args.ready_file, {"error": f"served name {name!r} is given twice", "kind": "ModelLoadError"})
            return 2
        models[name] = path
    try:
        engines = load_engines(models, backend=args.backend, threads=args.threads, n_ctx=args.n_ctx)
        server = ChatServer(engines, host=args.host, port=args.port, verbose=args.verbose, prefill=args.prefill)
    except (ModelLoadError, OSError) as exc:  # OSError: the port (address in use, permission)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _report(args.ready_file, {"error": str(exc), "kind": type(exc).__name__})
        return 2
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        _report(args.ready_file, {"error": f"{type(exc).__name__}: {exc}", "kind": type(exc).__name__})
        return 1
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/v1"
    print(f"serving {', '.join(map(repr, engines))} at {url}", flush=True)
    _report(args.ready_file, {"url": url, "pid": os.getpid(), "models": list(engines)})  # bound: connections wait
    server.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
