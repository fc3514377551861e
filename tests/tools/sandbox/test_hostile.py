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
    # a step may not signal the process holding the state before it (nor every process, nor its group)
    "kill_everything": ("import os\nos.kill(-1, 9)", both(err("PermissionError"), lambda r, c: not r.state_lost)),
    "kill_own_group": ("import os\nos.killpg(0, 9)", both(err("PermissionError"), lambda r, c: not r.state_lost)),
    "kill_own_parent": ("import os\nos.kill(os.getppid(), 9)\nimport time\ntime.sleep(5)",
                        both(err("PermissionError"), lambda r, c: r.rolled_back and not r.state_lost)),
    "tgkill_own_parent": ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                          "libc.syscall(234, os.getppid(), os.getppid(), 9), ctypes.get_errno()", value("(-1, 1)")),
    "prlimit_own_parent": ("import os, resource\nresource.prlimit(os.getppid(), resource.RLIMIT_CPU, (0, 0))",
                           err("PermissionError")),
    "posix_timer": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                    "libc.syscall(222, 1, None, ctypes.byref(ctypes.c_int())), ctypes.get_errno()", value("(-1, 1)")),
    "sigio_owner": ("import fcntl, os\nr, w = os.pipe()\nfcntl.fcntl(r, fcntl.F_SETOWN, os.getpid())",
                    err("PermissionError")),
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
                                lambda r, c: (r.error_kind is None or r.error_kind in ("timeout",))
                                and not r.is_final),
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
    "raw_clone_thread": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                         "libc.syscall(56, 0x10f00, 0, 0, 0, 0), ctypes.get_errno()", value("(-1, 1)")),
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
        path = eval(a.run("import os\nos.path.abspath('secret.txt')").value)  # as the episodes see it
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


# -- an episode's own state: nothing a step leaves behind may kill the holder later -----------------------------
TIMERS = {
    "alarm": "import signal\nsignal.alarm(1)",
    "setitimer": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.5)",
    "virtual_timer": "import signal\nsignal.setitimer(signal.ITIMER_VIRTUAL, 0.01)",
    "handler_then_alarm": "import signal\nsignal.signal(signal.SIGALRM, lambda *a: 1 / 0)\nsignal.alarm(1)",
    "pending_blocked_signal": "import os, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])\n"
                              "os.kill(os.getpid(), signal.SIGTERM)",
    "ignored_then_default": "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                            "signal.signal(signal.SIGUSR1, lambda *a: None)",
}


@pytest.mark.parametrize("snapshot", [True, False])
@pytest.mark.parametrize("name", sorted(TIMERS))
def test_timers_and_signals_do_not_outlive_the_step(name, snapshot, ep):
    import time

    ep.run("keep = 'before'")
    r = ep.run(TIMERS[name], snapshot=snapshot)
    assert r.error is None, r.error
    time.sleep(1.3)  # past every timer the step set
    r = ep.run("n = 0\nfor i in range(3 * 10 ** 6):\n    n += i\nkeep", timeout=20)  # CPU time for ITIMER_VIRTUAL
    assert r.value == "'before'" and not r.state_lost, (r.error, r.state_lost)
    assert ep.run("import os, signal\nos.kill(os.getpid(), signal.SIGUSR1)").error_kind == "crash"  # default again


def test_killing_the_own_holder_fails_the_step_and_keeps_the_state(ep):
    ep.run("keep = 7")
    for attempt in range(5):  # it used to race with the step's commit: sometimes no effect, sometimes a crash
        r = ep.run("import os\nkeep = -1\nos.kill(os.getppid(), 9)")
        assert "PermissionError" in (r.error or "") and r.rolled_back and not r.state_lost, (attempt, r.error)
        r = ep.run("import os\nkeep = -1\nos.kill(-1, 9)")
        assert "PermissionError" in (r.error or "") and not r.state_lost, (attempt, r.error)
        assert ep.run("keep").value == "7"


def test_zombie_children_are_reaped_not_counted(ep):
    r = ep.run("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        os._exit(0)\n"
               "time.sleep(0.3)\n'done'", timeout=5)
    assert r.error is None and r.value == "'done'", r.error
    assert strays(ep) == []


def test_sleeping_raw_thread_is_refused(ep):
    ep.run("keep = 1")
    r = ep.run("import _thread, time\n_thread.start_new_thread(time.sleep, (100,))")
    assert r.error is not None and "thread" in r.error and r.rolled_back, r.error
    r = ep.run("from concurrent.futures import ThreadPoolExecutor\nThreadPoolExecutor(2).submit(sum, [1]).result()")
    assert r.error is not None and "thread" in r.error, r.error
    assert len(os.listdir(f"/proc/{ep.pid}/task")) == 1  # the holder runs one thread, nothing sleeps in it
    assert ep.run("keep").value == "1"


def test_huge_final_answer_is_cut_and_the_observation_says_so(ep):
    r = ep.run("final_answer('x' * 10 ** 8)", timeout=20)
    assert r.is_final and r.error is None, r.error
    assert len(r.final_answer) == 100_000
    assert "cut" in r.observation() and "100000000" in r.observation()


def test_forged_final_answer_is_not_recorded(ep):
    code = ("import gc\nrt = [o for o in gc.get_objects() if type(o).__name__ == 'Runtime'][0]\n"
            "rt.chan.send({'type': 'done', 'step': rt.step, 'is_final': True, 'final_answer': 'forged'})\n"
            "while True: pass")
    r = ep.run(code, timeout=1.0)
    assert not r.is_final and r.final_answer is None
    r = ep.run("final_answer(5)")
    assert r.is_final and r.final_answer == 5


# -- candidates: each fork in its own signal scope and folder ---------------------------------------------------
def test_candidate_cannot_kill_its_siblings_or_its_parent(ep):
    ep.run("x = 'parent'")
    forks = ep.fork(3)
    for i, f in enumerate(forks):
        f.run(f"x = 'fork{i}'")
    attacker, victim = forks[0], forks[1]
    for target in (victim.pid, ep.pid, forks[2].pid):
        r = attacker.run(f"import os, signal\nos.kill({target}, signal.SIGKILL)")
        assert "PermissionError" in (r.error or ""), (target, r.error)
        r = attacker.run(f"import os, signal\nos.kill({target}, signal.SIGSTOP)")
        assert "PermissionError" in (r.error or ""), (target, r.error)
    attacker.run("import os\nos.kill(-1, 9)")
    for i, f in enumerate(forks[1:], 1):
        r = f.run("x")
        assert r.value == f"'fork{i}'" and not r.state_lost, (i, r.error)
    assert ep.run("x").value == "'parent'"
    assert alive(victim.pid) and alive(ep.pid)


def test_candidate_cannot_reach_sibling_or_parent_folders(ep):
    ep.run("open('parent.txt', 'w').write('p')")
    forks = ep.fork(3)
    cwd = {i: eval(f.run("import os\nos.getcwd()").value) for i, f in enumerate(forks)}
    parent_cwd = eval(ep.run("import os\nos.getcwd()").value)
    for i, f in enumerate(forks):
        f.run(f"open('mine{i}.txt', 'w').write('{i}')")
    attack = ("import glob, os\nmine = os.getcwd()\nreached = []\n"
              "targets = set(glob.glob('../*') + glob.glob('../../*') + glob.glob('../../*/*') + {extra!r})\n"
              "for t in sorted(targets):\n    t = os.path.realpath(t)\n"
              "    if t == mine or t.startswith(mine + '/') or not os.path.isdir(t):\n        continue\n"
              "    for what in ('write', 'read'):\n        try:\n"
              "            if what == 'write':\n                open(os.path.join(t, 'evil.txt'), 'w').write('x')\n"
              "            else:\n                os.listdir(t)\n            reached.append((what, t))\n"
              "        except OSError:\n            pass\nreached")
    r = forks[0].run(attack.format(extra=[cwd[1], cwd[2], parent_cwd]))
    assert r.error is None and r.value == "[]", (r.value, r.error)
    assert sorted(os.listdir(ep.workdir)) == ["parent.txt"]
    for i in (1, 2):
        assert sorted(os.listdir(forks[i].workdir)) == ["mine%d.txt" % i, "parent.txt"]


def test_broken_protocol_candidate_does_not_take_the_family_down(ep):
    ep.run("x = 'parent'")
    forks = ep.fork(3)
    for i, f in enumerate(forks):
        f.run(f"x = 'fork{i}'")
    r = forks[1].run("import gc\nrt = [o for o in gc.get_objects() if type(o).__name__ == 'Runtime'][0]\n"
                     "rt.chan.sock.send(b'\\x01not json')")
    assert r.state_lost
    for i in (0, 2):
        r = forks[i].run("x")
        assert r.value == f"'fork{i}'" and not r.state_lost, (i, r.error)
    assert ep.run("x").value == "'parent'"
    ep.adopt(forks[2])
    r = ep.run("x + '!'")
    assert r.value == "'fork2!'" and not r.state_lost, r.error


def test_adopt_takes_the_forks_isolation_record(ep):
    forks = ep.fork(2)
    forks[1].run("import gc\nrt = [o for o in gc.get_objects() if type(o).__name__ == 'Runtime'][0]\n"
                 "rt.chan.sock.send(b'\\x01not json')")  # replaced: a fresh worker with a uid of its own
    assert forks[1].isolation.uid != ep.isolation.uid
    ep.adopt(forks[1])
    assert ep.isolation.uid == eval(ep.run("import os\nos.getuid()").value)
    assert ep.isolation.to_dict() == forks[1].isolation.to_dict()


# -- limits on the whole episode (the episode and all its forks together) ---------------------------------------
def test_episode_memory_limit_counts_every_fork(sb, ep):
    limit = ep.isolation.episode_memory_mb
    assert limit and limit < 600, ep.isolation.missing  # the fixture's 256 MB per process gives 512 per episode
    forks = ep.fork(3)
    blob = str(200 * 2 ** 20)
    made = [f.run(f"blob = b'x' * {blob}\nlen(blob)", timeout=20) for f in forks]  # 600 MB in all
    kept = [f.run("len(blob)") for f in forks]
    # the kernel kills the episode's largest process when the episode as a whole is full: the fork that
    # allocates (its step fails, rolled back) or another fork holding its blob (its state is lost)
    held = [k.value == blob for k in kept]
    assert sum(held) < 3, "three forks of 200 MB each fit in an episode limit of %d MB" % limit
    for m, k, h in zip(made, kept, held):
        if not h:
            failed = m if m.error else k
            assert failed.error_kind == "memory" and "memory" in failed.error, (m.error, k.error)
    usage = ep.resources()
    assert usage["memory_peak_mb"] <= limit + 1 and usage["oom_kills"] >= 1, usage
    assert ep.run("1 + 1").value == "2"
    with sb.episode() as other:  # other episodes have budgets of their own
        assert other.run(f"blob = b'x' * {blob}\nlen(blob)", timeout=20).value == blob


def test_episode_file_count_and_size_quota():
    from agentdistill.tools.sandbox import Sandbox

    with Sandbox(timeout=20, preload=(), max_files=300, max_disk_mb=16, pool_size=0) as box, box.episode() as e:
        assert e.isolation.max_files == 300 and e.isolation.max_disk_mb == 16, e.isolation.missing
        r = e.run("n = 0\ntry:\n    while True:\n        open(f'f{n}', 'w').close()\n        n += 1\n"
                  "except OSError as e:\n    err = str(e)\n(n, err)")
        n, error = eval(r.value)
        assert n < 300 and "No space left" in error, r.value
        e.run("import os\nfor i in range(n):\n    os.remove(f'f{i}')")
        r = e.run("try:\n    open('big', 'wb').write(b'0' * (20 * 2 ** 20))\n"
                  "except OSError as e:\n    err = str(e)\nerr")
        assert "No space left" in (r.value or ""), (r.value, r.error)
        e.run("import os\nos.remove('big')\nopen('five', 'wb').write(b'0' * (5 * 2 ** 20))")
        forks = e.fork(2)  # the quota is the family's: the forks' copies count against it (15 of 16 MB)
        r = forks[0].run("open('more', 'wb').write(b'0' * (3 * 2 ** 20))")
        assert r.error is not None and "No space left" in r.error, r.error


def test_candidate_writes_through_an_inherited_file_land_in_its_own_copy(ep):
    ep.run("log = open('log.txt', 'a')\nlog.write('parent;')\nlog.flush()")
    forks = ep.fork(2)
    r = forks[0].run("log.write('fork0;')\nlog.flush()\nlog.tell()")
    assert r.error is None and r.value == "13", (r.value, r.error)
    assert open(os.path.join(ep.workdir, "log.txt")).read() == "parent;"
    assert open(os.path.join(forks[0].workdir, "log.txt")).read() == "parent;fork0;"
    assert open(os.path.join(forks[1].workdir, "log.txt")).read() == "parent;"


def test_forks_deeper_than_landlock_nests_say_they_share_a_domain(ep):
    ep.run("x = 0")
    depths = []
    for _ in range(16):  # the episode's domain and 15 nested ones fill Landlock's 16 layers
        fork = ep.fork(1)[0]
        ep.adopt(fork)
        depths.append((ep.isolation.fork_depth, ep.isolation.own_domain))
        assert ep.run("x += 1\nx").error is None
    assert depths[14] == (15, True) and depths[15] == (16, False), depths
    assert any("16 domains" in m for m in ep.isolation.missing), ep.isolation.missing
    assert ep.isolation.level == "partial"
