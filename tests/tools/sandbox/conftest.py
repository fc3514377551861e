"""Shared sandboxes for the sandbox tests (starting one costs ~1 s: the fork server imports numpy/sympy)."""

import os

import pytest

from agentdistill.tools.sandbox import Sandbox

# A secret in the host's environment, set before any Sandbox starts: no episode may ever see it.
SECRET = "agentdistill-test-secret-7f3a91"
os.environ["AGENTDISTILL_TEST_SECRET"] = SECRET

CALLS = []  # every call the host-side tools received, to check what crossed the channel


def search(query: str, k: int = 2):
    """Toy retriever: k passages mentioning the query."""
    CALLS.append(("search", query, k))
    return [f"passage {i} about {query}" for i in range(k)]


def broken(x):
    """A tool that always fails."""
    raise ValueError(f"cannot handle {x!r}")


@pytest.fixture(scope="session")
def sb():
    box = Sandbox(tools={"search": search, "broken": broken}, timeout=1.5, memory_mb=256, output_limit=2000)
    yield box
    box.close()


@pytest.fixture()
def ep(sb):
    with sb.episode() as episode:
        yield episode


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def uid_processes(uid: int) -> list[int]:
    """Live processes of `uid` on the host."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid and alive(int(name)):
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def strays(ep, wait: float = 1.0) -> list[int]:
    """Processes of the episode's uid other than its holder and the holder's pre-forked step child.

    Polls up to `wait` seconds: a retired holder may take a moment to exit after a hand-over."""
    import time

    deadline = time.monotonic() + wait
    while True:
        extra = [p for p in uid_processes(ep.isolation.uid) if p != ep.pid and _ppid(p) != ep.pid]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.02)
