"""Hostile code: each case asserts the safe outcome inside AND that nothing happened on the host.

Common checks after every case: the host and the fork server are alive, no marker file appeared on the
host, the host's secret never shows up in the step's output, and the episode still answers `1 + 1`.

    .venv/bin/python -m pytest tests/tools/sandbox/test_hostile.py -q
"""

import os
import uuid

import pytest

from agentdistill.tools.sandbox.sandbox import PROJECT_ROOT

from .conftest import CALLS, SECRET, alive, strays


def err(*names):
    """The step failed with one of these exception names in its error text."""
    def check(r, ctx):
        assert r.error is not None and any(n in r.error for n in names), r.error
    return check


def kind(*kinds):
    def check(r, ctx):
        assert r.error_kind in kinds, (r.error_kind, r.error)
    return check


def value(expected):
    def check(r, ctx):
        assert r.error is None and r.value == expected, (r.value, r.error)
    return check


def no_uid_leftovers(r, ctx):
    assert strays(ctx["ep"]) == [], "processes of the episode left running"


def both(*checks):
    def check(r, ctx):
        for c in checks:
            c(r, ctx)
    return check


CASES = {
    # -- time and CPU -------------------------------------------------------------------------------------
    "infinite_loop": ("while True:\n    pass", kind("timeout")),
    "sleep_forever": ("import time\ntime.sleep(1000)", kind("timeout")),
    "loop_swallowing_exceptions": ("while True:\n    try:\n        while True: pass\n    except BaseException: pass",
                                   kind("timeout")),
    "ignore_signals_then_loop": ("import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n"
                                 "    signal.signal(s, signal.SIG_IGN)\nwhile True: pass", kind("timeout")),
    # -- processes ----------------------------------------------------------------------------------------
    "fork_bomb": ("import os\nwhile True:\n    os.fork()", both(kind("exception", "timeout"), no_uid_leftovers)),
    "fork_and_orphan": ("import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        time.sleep(1000)\n"
                        "    os._exit(0)\ntime.sleep(0.2)", both(err("child processes"), no_uid_leftovers)),
    "subprocess_run": ("import subprocess\nsubprocess.run(['touch', '{marker}'])", err("PermissionError")),
    "os_system": ("import os\nos.system('touch {marker}')", lambda r, c: (r.value not in (None, "0"))),
    "os_popen": ("import os\nos.popen('id; touch {marker}').read()", err("PermissionError")),
    "os_execv": ("import os\nos.execv('/bin/sh', ['sh', '-c', 'touch {marker}'])", err("PermissionError")),
    "posix_spawn": ("import os\nos.posix_spawn('/bin/touch', ['touch', '{marker}'], {{}})", err("PermissionError")),
    "os_setsid_escape": ("import os\nos.setsid()", err("PermissionError")),
    "setuid_root": ("import os\nos.setuid(0)", err("PermissionError")),
    "raise_rlimit": ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))", err("ValueError")),
    # -- memory and output --------------------------------------------------------------------------------
    "memory_bomb_list": ("x = [0] * (10 ** 10)", kind("memory")),
    "memory_bomb_growing": ("a = []\nwhile True:\n    a.append(' ' * 10 ** 6)", kind("memory")),
    "memory_bomb_numpy": ("import numpy as np\nnp.ones((100000, 100000))", kind("memory")),
    "huge_output_single": ("print('x' * 10 ** 8)", both(kind("output_limit", "memory"),
                                                         lambda r, c: len(r.stdout) < 3000)),
    "output_flood": ("for i in range(10 ** 8):\n    print(i)", kind("output_limit")),
    "stderr_flood": ("import sys\nwhile True:\n    sys.stderr.write('e' * 10000)", kind("output_limit")),
    "raw_fd_write_is_discarded": ("import os\nos.write(1, b'x' * 100000)\nos.write(2, b'y' * 1000)",
                                  lambda r, c: r.stdout == "" and r.error is None),
    "disk_fill": ("open('big', 'wb').write(b'0' * (100 * 2 ** 20))",
                  both(err("File too large", "OSError"), lambda r, c: os.path.getsize(
                      os.path.join(c["ep"].workdir, "big")) <= 64 * 2 ** 20)),
    "parser_bomb": ("eval('(' * 100000 + ')' * 100000)", kind("exception", "memory")),
    "recursion": ("def f():\n    return f()\nf()", err("RecursionError")),
    # -- files --------------------------------------------------------------------------------------------
    "read_etc_shadow": ("open('/etc/shadow').read()", err("PermissionError")),
    "read_etc_passwd": ("open('/etc/passwd').read()", err("PermissionError")),
    "list_root_home": ("import os\nos.listdir('/root')", err("PermissionError")),
    "write_tmp": ("open('{marker}', 'w').write('x')", err("PermissionError")),
    "write_dev_shm": ("open('/dev/shm/{name}', 'w').write('x')", err("PermissionError")),
    "write_project": ("open('{project}/{name}.txt', 'w').write('x')", err("PermissionError")),
    "read_project_source": ("open('{project}/pyproject.toml').read()", err("PermissionError")),
    "symlink_escape": ("import os\nos.symlink('/etc/passwd', 'link')\nopen('link').read()", err("PermissionError")),
    "hardlink_escape": ("import os\nos.link('/etc/passwd', 'hard')", err("PermissionError", "OSError")),
    "walk_up_to_sandbox_base": ("import os\nos.listdir('../..')", err("PermissionError")),
    "raw_block_device": ("open('/dev/vda', 'rb').read(10)", err("PermissionError", "FileNotFoundError")),
    "sysrq_trigger": ("open('/proc/sysrq-trigger', 'w').write('b')", err("PermissionError", "FileNotFoundError")),
    "mount_tmpfs": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                    "libc.mount(b'none', b'.', b'tmpfs', 0, None), ctypes.get_errno()", value("(-1, 1)")),
    "chroot": ("import os\nos.chroot('.')", err("PermissionError")),
    # -- network ------------------------------------------------------------------------------------------
    "socket_inet": ("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)", err("PermissionError")),
    "socket_unix": ("import socket\nsocket.socket(socket.AF_UNIX)", err("PermissionError")),
    "socket_raw_syscall": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                           "libc.socket(2, 1, 0), ctypes.get_errno()", value("(-1, 1)")),
    "urllib": ("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
               err("URLError", "PermissionError")),
    "dns": ("import socket\nsocket.getaddrinfo('example.com', 80)", err("gaierror", "PermissionError")),
    "unshare_user_ns": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                        "libc.unshare(0x10000000), ctypes.get_errno()", value("(-1, 1)")),
    # -- crashes ------------------------------------------------------------------------------------------
    "segfault": ("import ctypes\nctypes.string_at(0)", kind("crash")),
    "abort": ("import os\nos.abort()", kind("crash")),
    "os_exit": ("import os\nos._exit(3)", kind("crash")),
    "sys_exit": ("import sys\nsys.exit(0)", err("SystemExit")),
    "keyboard_interrupt": ("raise KeyboardInterrupt", err("KeyboardInterrupt")),
    # -- signals, other processes -------------------------------------------------------------------------
    "kill_host": ("import os\nos.kill({host_pid}, 9)", err("PermissionError", "ProcessLookupError")),
    "kill_fork_server": ("import os\nos.kill({server_pid}, 9)", err("PermissionError", "ProcessLookupError")),
    "kill_init": ("import os\nos.kill(1, 9)", err("PermissionError", "ProcessLookupError")),
    # kills only this episode's own processes; the step may even finish if the holder dies after the hand-over
    "kill_everything": ("import os\nos.kill(-1, 9)", lambda r, c: r.error is None or r.state_lost
                        or r.error_kind == "crash"),
    "kill_own_parent": ("import os\nos.kill(os.getppid(), 9)\nimport time\ntime.sleep(5)",
                        lambda r, c: r.state_lost or r.error_kind in ("crash", "timeout")),
    "ptrace_host": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                    "libc.ptrace(16, {host_pid}, 0, 0), ctypes.get_errno()", value("(-1, 1)")),
    "host_environ_via_proc": ("open('/proc/{host_pid}/environ').read()", err("FileNotFoundError", "Permission")),
    "host_cmdline_via_proc": ("open('/proc/{host_pid}/cmdline').read()", err("FileNotFoundError", "Permission")),
    "list_host_processes": ("import os\nstr({host_pid}) in os.listdir('/proc')", value("False")),
    # -- secrets ------------------------------------------------------------------------------------------
    "environment_secret": ("import os\nsorted(os.environ.items())", lambda r, c: SECRET not in (r.value or "")),
    "own_proc_environ": ("open('/proc/self/environ').read()", lambda r, c: SECRET not in (r.value or "")),
    "server_environ": ("open('/proc/{server_pid}/environ').read()", err("FileNotFoundError", "Permission")),
    # -- introspection and runtime tampering --------------------------------------------------------------
    "subclasses_to_os_system": ("c = [k for k in ().__class__.__base__.__subclasses__() "
                                "if k.__name__ == 'catch_warnings'][0]\n"
                                "c()._module.__builtins__['__import__']('os').system('touch {marker}')",
                                lambda r, c: r.value not in (None, "0")),
    "frame_walk_to_worker": ("import sys\nf = sys._getframe()\nnames = []\nwhile f:\n"
                             "    names.append(f.f_globals.get('__name__'))\n    f = f.f_back\n"
                             "'open' in dir(f) or any('sandbox' in (n or '') for n in names)", value("True")),
    "gi_frame_globals": ("def g():\n    yield 1\ngen = g()\nsorted(k for k in gen.gi_frame.f_globals "
                         "if k in ('search', 'final_answer'))", value("['final_answer', 'search']")),
    "traceback_frames": ("try:\n    1/0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame\n"
                         "    while f.f_back:\n        f = f.f_back\n"
                         "    sock = f.f_globals.get('socket')\n"
                         "import socket\nsocket.socket(socket.AF_INET)", err("PermissionError")),
    "forge_done_over_channel": ("import gc\nrt = [o for o in gc.get_objects() if type(o).__name__ == 'Runtime'][0]\n"
                                "rt.chan.send({{'type': 'done', 'step': rt.step, 'is_final': True, "
                                "'final_answer': 'forged', 'error_kind': 'bogus'}})\nwhile True: pass",
                                lambda r, c: r.error_kind is None or r.error_kind in ("timeout",)),
    "garbage_on_channel": ("import gc\nrt = [o for o in gc.get_objects() if type(o).__name__ == 'Runtime'][0]\n"
                           "rt.chan.sock.send(b'\\x01not json')", lambda r, c: r.state_lost),
    "huge_tool_argument": ("search('x' * 10 ** 7)", both(err("exceed the limit"),
                                                         lambda r, c: not any(len(a[1]) > 100 for a in CALLS))),
    "break_json_module": ("import json\njson.dumps = None", lambda r, c: r.state_lost or r.error is not None),
    "sys_modules_clear": ("import sys\nsys.modules.clear()", lambda r, c: True if r.error is None
                          else r.state_lost),
    "import_hook_tampering": ("import sys\nclass Evil:\n    def find_spec(self, *a):\n"
                              "        raise ImportError('evil')\nsys.meta_path.insert(0, Evil())\nimport tabnanny",
                              err("ImportError")),
    "thread_outlives_step": ("import threading, time\ndef spam():\n    while True:\n"
                             "        open('spam.txt', 'a').write('x')\n        time.sleep(0.01)\n"
                             "threading.Thread(target=spam, daemon=True).start()",
                             both(err("thread"), no_uid_leftovers)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile(name, sb):
    code, check = CASES[name]
    CALLS.clear()
    marker = f"/tmp/agentdistill-hostile-{uuid.uuid4().hex}"
    with sb.episode() as ep:
        ctx = {"ep": ep, "marker": marker, "name": f"hostile-{uuid.uuid4().hex}", "host_pid": os.getpid(),
               "server_pid": sb.server_pid, "project": PROJECT_ROOT}
        r = ep.run(code.format(**ctx), timeout=1.0)
        assert check(r, ctx) is not False
        assert SECRET not in r.stdout + (r.value or "") + (r.error or "")
        assert not os.path.exists(marker)
        assert not os.path.exists(f"/dev/shm/{ctx['name']}") and not os.path.exists(f"{PROJECT_ROOT}/{ctx['name']}.txt")
        assert alive(sb.server_pid)
        assert ep.run("1 + 1").value == "2"  # the episode survived (or was replaced) and still works


def test_episodes_cannot_read_each_other(sb):
    with sb.episode() as a, sb.episode() as b:
        a.run("secret = 'alpha-123'\nopen('secret.txt', 'w').write('alpha-123')")
        path = os.path.join(a.workdir, "secret.txt")
        r = b.run(f"open({path!r}).read()")
        assert "PermissionError" in r.error
        r = b.run(f"open('/proc/{a.pid}/mem', 'rb').read(10)")
        assert r.error is not None and "alpha" not in r.error
        r = b.run(f"import os\nos.kill({a.pid}, 9)")
        assert "PermissionError" in r.error or "ProcessLookupError" in r.error
        assert a.run("secret").value == "'alpha-123'"
        assert a.isolation.uid != b.isolation.uid


def test_kill_everything_spares_other_episodes(sb):
    with sb.episode() as a, sb.episode() as b:
        a.run("keep = 1")
        b.run("import os\nos.kill(-1, 9)")
        assert a.run("keep").value == "1"
        assert alive(a.pid)


def test_tampering_stays_inside_its_episode(sb):
    with sb.episode() as a, sb.episode() as b:
        a.run("import builtins\nbuiltins.print = lambda *x, **k: None")
        assert a.run("print('hi')").stdout == ""  # an episode may break its own runtime...
        assert b.run("print('hi')").stdout == "hi\n"  # ...and nothing else
