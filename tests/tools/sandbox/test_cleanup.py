"""No worker outlives its episode, its Sandbox, or the host process (even when the host is SIGKILLed).

    .venv/bin/python -m pytest tests/tools/sandbox/test_cleanup.py -q
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

from agentdistill.tools.sandbox import Sandbox

from .conftest import alive, uid_processes

HOST = """
import json, sys, time
from agentdistill.tools.sandbox import Sandbox
sb = Sandbox(preload=())
ep = sb.episode()
ep.run("x = 1")
forks = ep.fork(2)
r = ep.run("import time\\ntime.sleep(60)", timeout=100)  # busy in a step when the host dies
"""


def _wait_gone(pids, uid=None, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids) and (uid is None or not uid_processes(uid)):
            return True
        time.sleep(0.05)
    return False


def _cgroups_gone(server_pid, timeout=5.0) -> bool:
    """No episode cgroup folder of that fork server is left in any hierarchy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not glob.glob(f"/sys/fs/cgroup/*/**/agentdistill-{server_pid}", recursive=True):
            return True
        time.sleep(0.1)
    return False


def test_workers_die_with_a_killed_host(tmp_path):
    script = tmp_path / "host.py"
    # the host prints what it started, then blocks in a long step; we SIGKILL it there
    script.write_text(HOST.replace('r = ep.run', 'print(json.dumps({"server": sb.server_pid, "ep": ep.pid, '
                                   '"forks": [f.pid for f in forks], "uid": ep.isolation.uid, '
                                   '"base": sb.base_dir}), flush=True)\nr = ep.run'))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    time.sleep(0.3)  # let the long step start
    assert alive(info["server"]) and all(alive(p) for p in info["forks"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_gone([info["server"], info["ep"], *info["forks"]], uid=info["uid"])
    assert _wait_gone([], uid=info["uid"])
    assert not os.path.exists(info["base"])
    assert _cgroups_gone(info["server"])


def test_sandbox_close_kills_everything():
    sb = Sandbox(preload=())
    ep = sb.episode()
    ep.run("x = 1")
    forks = ep.fork(3)
    pids, uid, base = [sb.server_pid, ep.pid] + [f.pid for f in forks], ep.isolation.uid, sb.base_dir
    assert len(uid_processes(uid)) >= 4  # the holder and three forks
    server = sb.server_pid
    assert glob.glob(f"/sys/fs/cgroup/pids/**/agentdistill-{server}", recursive=True)
    sb.close()
    assert _wait_gone(pids, uid=uid)
    assert not os.path.exists(base)
    assert _cgroups_gone(server)
