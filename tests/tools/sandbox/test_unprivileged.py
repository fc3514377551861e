"""Without root the sandbox runs with the layers it can enforce and says which are missing.

Simulated with `unshare -U --map-user=1000`: the test process sees itself as uid 1000 (not root), so the
sandbox takes its unprivileged path (no per-episode uid, no private /proc; network namespace through a user
namespace; Landlock, seccomp and rlimits as usual).

    .venv/bin/python -m pytest tests/tools/sandbox/test_unprivileged.py -q
"""

import json
import subprocess
import sys

SCRIPT = r"""
import json, os
from agentdistill.tools.sandbox import Sandbox
out = {"euid": os.geteuid()}
with Sandbox(timeout=2, preload=()) as sb, sb.episode() as ep:
    out["level"], out["missing"] = sb.isolation.level, sb.isolation.missing
    out["netns"], out["landlock"], out["seccomp"] = (sb.isolation.network_namespace, sb.isolation.landlock_abi,
                                                     sb.isolation.seccomp)
    ep.run("x = 41")
    out["socket"] = ep.run("import socket; socket.socket()").error_kind
    out["passwd"] = ep.run("open('/etc/passwd').read()").error_kind
    out["timeout"] = ep.run("while True: pass", timeout=0.5).error_kind
    forks = ep.fork(2)
    forks[1].run("x += 1")
    ep.adopt(forks[1])
    out["x"] = ep.run("x").value
print(json.dumps(out))
"""


def test_runs_partially_isolated_without_root():
    proc = subprocess.run(["unshare", "-U", "--map-user=1000", "--map-group=1000", sys.executable, "-c", SCRIPT],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["euid"] == 1000
    assert out["level"] == "partial"
    assert any(m.startswith("uid:") for m in out["missing"])
    assert out["netns"] and out["landlock"] > 0 and out["seccomp"]
    assert out["socket"] == out["passwd"] == "exception" and out["timeout"] == "timeout"
    assert out["x"] == "42"
