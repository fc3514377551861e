"""Runs that outlive their process: a job killed with kill -9 leaves its MLflow runs RUNNING forever. Every run of
a job carries the job's key and the process that runs it, so a rerun of the same job finds them:

    tags = job_tags(key)                       # agentdistill.job = key, agentdistill.process = "host:pid:start"
    run_id = run_to_continue(experiment_id, key, "agent-distill")
    # None: no earlier run of that name in the job -> a new run
    # an id: an earlier run whose process is gone (orphaned RUNNING), failed, or (reopen_finished) finished -> the
    #        rerun continues it (mlflow.start_run(run_id=...)): one run per name and job, never a duplicate
    # JobStillRunning: that run's process is alive - two processes on one job would write over each other

A continued run is tagged agentdistill.resumed = "true"; the RUNNING child runs its dead process left (generation,
training) are closed as FAILED with the reason in agentdistill.error. The key hashes what makes two runs "the
same job" (the caller's settings); `code_version()` is the package's own source, so edited code is a new job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
from pathlib import Path

JOB_TAG = "agentdistill.job"
PROCESS_TAG = "agentdistill.process"
RESUMED_TAG = "agentdistill.resumed"
ERROR_TAG = "agentdistill.error"
RUNNING, FINISHED, FAILED = "RUNNING", "FINISHED", "FAILED"


class JobStillRunning(RuntimeError):
    """Another live process runs this job; the message names it and the way out."""


def job_key(settings: dict) -> str:
    """A short stable hash of the settings that make a job (config, output folder, code version...)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version and a hash of its source files (*.py, templates): edited code makes a new job."""
    import agentdistill

    root = Path(agentdistill.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".jinja") and p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return f"{agentdistill.__version__}+{digest.hexdigest()[:12]}"


def _start_time(pid: int) -> str:
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone: the pid alone is checked
        return ""


def process_tag(pid: int | None = None) -> str:
    """'host:pid:start time' of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def process_alive(tag: str) -> bool | None:
    """Whether the process of a PROCESS_TAG value still runs; None when it ran on another host (cannot tell)."""
    try:
        host, pid_text, started = tag.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid
        pass
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started and f"{proc.create_time():.2f}" != started:  # the pid was reused by another process
            return False
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends: gone
        return False
    return True


def job_tags(key: str, resumed: bool = False) -> dict[str, str]:
    tags = {JOB_TAG: key, PROCESS_TAG: process_tag()}
    if resumed:
        tags[RESUMED_TAG] = "true"
    return tags


def job_runs(experiment_id: str, key: str) -> dict:
    """The job's top-level runs by name (the newest of a name); JobStillRunning if a live process runs one."""
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{key}'",
                              order_by=["attributes.start_time ASC"], output_format="list")
    by_name = {}
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags:
            by_name[run.info.run_name] = run  # later ones replace earlier ones
    for run in by_name.values():
        _refuse_if_alive(run)
    return by_name


def _refuse_if_alive(run) -> None:
    if run.info.status != RUNNING:
        return
    tag = run.data.tags.get(PROCESS_TAG, "")
    if tag == process_tag():
        return  # this process's own run (reopened within the same job)
    alive = process_alive(tag)
    if alive is False:
        return
    host, pid, _ = (tag.rsplit(":", 2) + ["", "", ""])[:3]
    where = f"pid {pid} on {host}" + (" (another host: it may have died, this process cannot tell)"
                                      if alive is None else "")
    raise JobStillRunning(
        f"MLflow run {run.info.run_name!r} ({run.info.run_id}) of this job is RUNNING in {where}. Fix: wait for "
        f"that process to finish or stop it; if it is gone, mark the run FAILED (MLflow UI, or "
        f"`MlflowClient().set_terminated('{run.info.run_id}', 'FAILED')`); or start new runs (distill --fresh, or eval "
        f"with another --run-name).")


def run_to_continue(experiment_id: str, key: str, name: str, reopen_finished: bool = True):
    """The earlier run of `name` in the job that a rerun continues (see the module docstring), or None."""
    run = job_runs(experiment_id, key).get(name)
    if run is None or (run.info.status == FINISHED and not reopen_finished):
        return None
    return run


def close_orphan_children(run_id: str) -> list[str]:
    """Mark the RUNNING child runs of `run_id` FAILED (their process died); returns their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{run_id}' and "
                                                f"attributes.status = '{RUNNING}'")
    closed = []
    for child in children:
        if process_alive(child.data.tags.get(PROCESS_TAG, "")) is True:
            continue
        client.set_tag(child.info.run_id, ERROR_TAG, "interrupted: the process that ran it ended before the run did")
        client.set_terminated(child.info.run_id, FAILED)
        closed.append(child.info.run_id)
    return closed
