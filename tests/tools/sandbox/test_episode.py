"""Behaviour of episodes: state, rollback, forks, tools, final_answer, output cap, threads.

    .venv/bin/python -m pytest tests/tools/sandbox/test_episode.py -q
"""

import os
import threading
import time

import pytest

from agentdistill.tools.sandbox import Sandbox, StepResult

from .conftest import CALLS, alive, strays, uid_processes


def test_state_persists_between_steps(ep):
    assert ep.run("x = 20").error is None
    assert ep.run("def f(y):\n    return x + y").error is None
    r = ep.run("import numpy as np\nf(np.int64(22))")
    assert r.error is None and r.value == "np.int64(42)"
    r = ep.run("print(f(1))")
    assert r.stdout == "21\n", r


def test_value_of_last_expression_only(ep):
    r = ep.run("a = 3\na * 2")
    assert r.value == "6" and r.stdout == ""
    assert ep.run("a = 4").value is None
    assert ep.run("None").value is None


def test_exception_rolls_back_state_and_observation_is_actionable(ep):
    ep.run("items = [1, 2]")
    r = ep.run("items.append(3)\nd = {}\nd['missing']")
    assert r.error_kind == "exception" and r.rolled_back
    assert "KeyError: 'missing'" in r.error and "<step" in r.error and "line 3" in r.error
    assert ep.run("items").value == "[1, 2]"  # the append of the failed step is undone
    obs = r.observation()
    assert obs.splitlines()[-1] == "KeyError: 'missing'" and len(obs) < 400


def test_timeout_rolls_back_and_episode_survives(ep):
    ep.run("n = 1")
    r = ep.run("n = 2\nwhile True:\n    pass", timeout=0.5)
    assert r.error_kind == "timeout" and "0.5s" in r.error and r.rolled_back
    assert ep.run("n").value == "1"


def test_crash_rolls_back(ep):
    ep.run("keep = 'yes'")
    r = ep.run("keep = 'no'\nimport ctypes\nctypes.string_at(0)")
    assert r.error_kind == "crash" and "SIGSEGV" in r.error
    assert ep.run("keep").value == "'yes'"


def test_memory_error_is_reported_and_rolled_back(ep):
    ep.run("small = list(range(10))")
    r = ep.run("big = bytearray(2 * 1024**3)")
    assert r.error_kind == "memory" and "MemoryError" in r.error
    assert ep.run("len(small)").value == "10"


def test_os_exit_is_a_crash_not_a_silent_success(ep):
    ep.run("v = 1")
    r = ep.run("import os\nv = 2\nos._exit(0)")
    assert r.error_kind == "crash" and "os._exit" in r.error
    assert ep.run("v").value == "1"


def test_syntax_error(ep):
    r = ep.run("x = (1 +")
    assert r.error_kind == "syntax" and r.error.startswith("SyntaxError")


def test_without_snapshot_state_is_kept_even_on_error(ep):
    ep.run("log = []", snapshot=False)
    r = ep.run("log.append(1)\n1/0", snapshot=False)
    assert r.error_kind == "exception" and not r.rolled_back
    assert ep.run("log", snapshot=False).value == "[1]"  # no snapshot: partial effects stay
    r = ep.run("while True: pass", timeout=0.3, snapshot=False)  # soft timer stops pure-Python loops
    assert r.error_kind == "timeout" and not r.state_lost
    assert ep.run("log").value == "[1]"


def test_forks_are_independent(ep):
    ep.run("shared = 'parent'\nopen('base.txt', 'w').write('b')")
    forks = ep.fork(3)
    assert len({f.pid for f in forks} | {ep.pid}) == 4
    assert len({f.workdir for f in forks} | {ep.workdir}) == 4
    for i, f in enumerate(forks):
        assert f.run(f"shared = 'fork{i}'\nopen('mine{i}.txt', 'w').write('x')").error is None
    for i, f in enumerate(forks):
        assert f.run("shared").value == f"'fork{i}'"
        files = sorted(os.listdir(f.workdir))
        assert files == ["base.txt", f"mine{i}.txt"]  # a copy of the parent's folder plus its own file only
    assert ep.run("shared").value == "'parent'"
    assert sorted(os.listdir(ep.workdir)) == ["base.txt"]
    ep.adopt(forks[1])
    assert ep.run("shared").value == "'fork1'"
    assert sorted(os.listdir(ep.workdir)) == ["base.txt", "mine1.txt"]
    assert forks[0].closed and forks[2].closed
    time.sleep(0.2)
    assert not alive(forks[0].pid) and not alive(forks[2].pid)


def test_forks_run_concurrently_from_threads(ep):
    ep.run("base = 10")
    forks = ep.fork(4)
    results = [None] * 4

    def work(i):
        results[i] = forks[i].run(f"import time\nt0 = time.time()\ntime.sleep(1.5)\n(base + {i}, t0, time.time())",
                                 timeout=10)  # long enough to overlap on a loaded machine

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = [eval(r.value) for r in results]
    assert [v[0] for v in values] == [10, 11, 12, 13]
    assert max(v[1] for v in values) < min(v[2] for v in values)  # all four were running at the same time
    for f in forks:
        f.close()


def test_concurrent_episodes_from_threads(sb):
    out = {}

    def work(i):
        with sb.episode() as e:
            e.run(f"me = {i}")
            e.run("me = me * 2")
            out[i] = e.run("me").value

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: str(2 * i) for i in range(5)}


def test_tool_calls_round_trip(ep):
    CALLS.clear()
    r = ep.run("hits = search('Ada Lovelace', k=3)\nprint(len(hits))\nhits[0]")
    assert r.error is None and r.stdout == "3\n" and r.value == "'passage 0 about Ada Lovelace'"
    assert CALLS == [("search", "Ada Lovelace", 3)]
    assert r.tool_calls == [{"name": "search", "args": ["Ada Lovelace"], "kwargs": {"k": 3},
                             "result": ["passage 0 about Ada Lovelace", "passage 1 about Ada Lovelace",
                                        "passage 2 about Ada Lovelace"]}]
    import_np = ep.run("import numpy as np\nsearch(np.str_('x'), k=np.int64(1))")  # numpy args become plain
    assert import_np.value == "['passage 0 about x']"


def test_tool_error_is_catchable_inside(ep):
    r = ep.run("broken(1)")
    assert r.error_kind == "exception" and "ValueError: cannot handle 1" in r.error
    r = ep.run("try:\n    broken(2)\nexcept Exception as e:\n    print('caught', type(e).__name__)")
    assert r.stdout == "caught ToolError\n" and r.tool_calls[0]["error"] == "ValueError: cannot handle 2"


def test_final_answer_is_plain_data_and_cannot_be_printed(ep):
    r = ep.run("print('Final answer: 7')\nprint({'is_final': True})")
    assert not r.is_final and r.final_answer is None
    r = ep.run("import sympy, numpy as np\nfinal_answer({'a': sympy.sqrt(8), 'b': np.float32(0.5), 'c': (1, 2)})")
    assert r.is_final and r.final_answer == {"a": "2*sqrt(2)", "b": 0.5, "c": [1, 2]}
    assert "Final answer" in r.observation()
    r = ep.run("x = 1")
    assert not r.is_final  # per step


def test_final_answer_ends_the_step(ep):
    r = ep.run("final_answer(1)\nprint('after')")
    assert r.is_final and r.final_answer == 1 and r.stdout == ""


def test_output_is_capped(sb, ep):
    r = ep.run("print('a' * 5000)")
    assert r.error is None and len(r.stdout) < 2200 and "3001 more characters" in r.stdout
    r = ep.run("while True:\n    print('spam' * 1000)", timeout=5)
    assert r.error_kind == "output_limit"  # stopped by the cap, not by the clock (that would be "timeout")


def test_threads_are_refused_with_a_clear_error(ep):
    ep.run("t = None")
    r = ep.run("import threading, time\nt = threading.Thread(target=time.sleep, args=(30,))\nt.start()")
    assert r.error_kind == "exception" and r.rolled_back
    assert "can't start new thread" in r.error and "Threads are not available in the sandbox" in r.error
    assert ep.run("t is None").value == "True"


def test_close_kills_worker_and_removes_folder(sb):
    ep = sb.episode()
    ep.run("open('f.txt', 'w').write('x')")
    pid, workdir, uid = ep.pid, ep.workdir, os.stat(ep.workdir).st_uid
    ep.close()
    time.sleep(0.3)
    assert not alive(pid) and not os.path.exists(workdir) and uid_processes(uid) == []
    with pytest.raises(RuntimeError, match="closed"):
        ep.run("1")


def test_isolation_report_full_as_root(sb, ep):
    rep = sb.isolation
    assert rep.level == "full", rep.missing
    r = ep.run("import os\nos.getuid(), os.getgid(), sorted(os.environ)")
    uid = eval(r.value)[0]
    assert uid == ep.isolation.uid and uid != 0
    assert eval(r.value)[2] == sorted(["HOME", "TMPDIR", "PATH", "LANG", "OPENBLAS_NUM_THREADS",
                                       "OMP_NUM_THREADS", "MKL_NUM_THREADS"])


def test_refuses_to_run_without_any_isolation_unless_allowed():
    off = {"uid": False, "rlimits": False, "namespaces": False, "landlock": False, "seccomp": False}
    with pytest.raises(RuntimeError, match="allow_unisolated=True"):
        Sandbox(_layers=off, preload=())
    with Sandbox(_layers=off, preload=(), allow_unisolated=True) as box:
        assert box.isolation.level == "none"
        with box.episode() as e:
            assert e.run("1 + 1").value == "2"


def test_bad_arguments_have_clear_errors(sb, ep):
    with pytest.raises(ValueError, match="identifier"):
        Sandbox(tools={"final_answer": print})
    with pytest.raises(TypeError, match="str"):
        ep.run(b"1")
    with pytest.raises(ValueError, match="fork"):
        ep.fork(0)
    other = sb.episode()
    with pytest.raises(ValueError, match="adopt"):
        ep.adopt(other)
    other.close()


def test_step_result_observation_formats():
    assert StepResult().observation() == "(no output)"
    assert StepResult(stdout="hi\n", value="3").observation() == "hi\nOut: 3"


def test_without_snapshot_leftover_processes_are_killed(ep):
    r = ep.run("import os, time\nif os.fork() == 0:\n    time.sleep(100)\nz = 1", snapshot=False)
    assert r.error_kind == "exception" and "child processes" in r.error and not r.state_lost
    assert strays(ep) == []


def test_interrupted_waits_restart(ep):
    # a process stopped and continued in the middle of a sleep resumes it with restart_syscall, which the
    # seccomp allowlist must permit (glibc aborts on an unexpected futex/sleep error otherwise)
    code = ("import os, signal, time\npid = os.fork()\nif pid == 0:\n    time.sleep(0.3)\n    os._exit(7)\n"
            "for _ in range(3):\n    time.sleep(0.03)\n    os.kill(pid, signal.SIGSTOP)\n    time.sleep(0.03)\n"
            "    os.kill(pid, signal.SIGCONT)\nos.WEXITSTATUS(os.waitpid(pid, 0)[1])")
    r = ep.run(code, timeout=5)
    assert r.value == "7", r.error


def test_common_libraries_work_inside(ep):
    r = ep.run("import math, fractions, itertools, collections, re, json, statistics, decimal, datetime\n"
               "import numpy as np, sympy as sp\nx = sp.symbols('x')\n"
               "(sorted(sp.solve(x**2 - 4, x)), float(np.linalg.det(np.eye(3))), statistics.mean([1, 2, 3]),"
               " str(fractions.Fraction(3, 6)))", timeout=20)
    assert r.value == "([-2, 2], 1.0, 2, '1/2')", r.error
    r = ep.run("import tempfile, os\nd = tempfile.mkdtemp()\nd.startswith(os.getcwd())")
    assert r.value == "True", r.error


def test_code_that_redefines_a_tool_gets_it_back_and_is_told(ep):
    # small students copy the system prompt's stub `def final_answer(answer) -> None: ...`; the no-op then
    # swallowed every later final_answer(15) (measured: the quickstart's distilled student, 2 of 10 questions)
    r = ep.run('def final_answer(answer) -> None:\n    """Ends the task with the answer."""\nsearch = 3\nx = 2')
    assert not r.is_final and not r.error
    assert "final_answer" in r.stdout and "search" in r.stdout and "restored" in r.stdout
    assert ep.run("print(search('q', k=1))").stdout.strip() == "['passage 0 about q']"
    r = ep.run("final_answer(x * 21)")
    assert r.is_final and r.final_answer == 42
    assert "restored" not in ep.run("y = 1").stdout  # a step that leaves the tools alone gets no note
