"""serve_process: the OpenAI-compatible server in a child process that dies with its parent, driven through
server_lm + sample: the client path of a cluster run, on a laptop."""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentdistill.lm import sample, server_lm
from agentdistill.lm.models import gguf_path
from agentdistill.lm.server_process import ServerStartError, serve_process

from .conftest import QUESTION, SMOL


PARTIAL = [*QUESTION, {"role": "assistant", "content": "The answer is"}]


def _state(pid: int) -> str | None:
    """The process state letter from /proc, None when it is gone (a zombie counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if state in ("Z", "X") else state


def _children() -> set[int]:
    pids = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids |= {int(p) for p in f.read().split()}
    return {p for p in pids if _state(p) is not None}


def _health(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url.rsplit("/v1", 1)[0] + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def served():
    # two served names: the shipped model, and its GGUF file by path (how an exported student is served)
    models = {"smol": SMOL, "student": str(gguf_path(SMOL))}
    box = {}
    # started from a thread that ends at once: the child must not take that thread's end for its parent's death
    starter = threading.Thread(target=lambda: box.update(srv=serve_process(models, startup_timeout=180)))
    starter.start()
    starter.join()
    assert "srv" in box, "serve_process failed (see the thread's traceback above)"
    with box["srv"] as srv:
        yield srv


def test_process_serves_two_names_and_routes_by_name(served):
    time.sleep(0.5)  # past a PDEATHSIG from the (ended) starting thread, were it set there
    assert served.alive() and served.names == ["smol", "student"]
    with urllib.request.urlopen(served.url + "/models", timeout=10) as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["smol", "student"]
    for name in served.names:
        lm = served.lm(name, temperature=0.0, max_tokens=4, cache=False)
        [text] = sample(lm, QUESTION)
        assert text and lm.history[-1]["response_model"] == name  # answered by the engine served as `name`
    with pytest.raises(ValueError, match="'smol', 'student'"):
        served.lm("gpt-5")
    unknown = server_lm("gpt-5", served.url, server="agentdistill", num_retries=0, cache=False)
    with pytest.raises(Exception, match="'gpt-5' does not exist on this server; served models: 'smol', 'student'"):
        sample(unknown, QUESTION, max_tokens=4)


def test_process_continues_a_partial_turn_byte_exact():
    """The server's continuation of a partial turn is the in-process engine's, byte for byte. Both start fresh and
    see the same requests in the same order: the engine's cached prefixes (its history) can flip near-ties."""
    from agentdistill.lm import LlamaCppEngine
    from agentdistill.lm.models import tokenizer_dir

    engine = LlamaCppEngine(gguf_path(SMOL), tokenizer_dir(SMOL), kv_tokens=4 * 8192 + 5)  # its own decoder
    with serve_process({"smol": SMOL}, startup_timeout=180) as srv:
        lm = srv.lm("smol", temperature=0.0, max_tokens=12, cache=False)
        for prefix in ("The answer is", "Thought: 2+3 "):  # a trailing space too (vLLM would strip it)
            partial = [*QUESTION, {"role": "assistant", "content": prefix}]
            [expected] = engine.generate(partial, max_tokens=12)
            assert sample(lm, partial, n=1, temperature=0.0, continuation=None) == [expected.text]
            assert not expected.text.startswith(prefix.strip())  # only the continuation comes back


def test_process_n_candidates_and_concurrent_requests(served):
    lm = served.lm("student", temperature=0.9, max_tokens=6, cache=False)
    texts = sample(lm, [{"role": "user", "content": "Write a short poem about the sea."}], n=4)
    assert len(texts) == 4 and len(set(texts)) > 1  # n concurrent requests (distinct rollout ids)
    questions = [[{"role": "user", "content": f"What is {i}+{i}?"}] for i in range(6)]
    lms = {name: served.lm(name, temperature=0.0, max_tokens=6, cache=False) for name in served.names}
    with ThreadPoolExecutor(max_workers=6) as pool:  # both names at once, partial turns among them
        futures = [pool.submit(sample, lms[served.names[i % 2]], q + [{"role": "assistant", "content": "It is"}]
                               if i % 3 == 0 else q, n=1) for i, q in enumerate(questions)]
        results = [f.result(timeout=120) for f in futures]
    assert all(len(r) == 1 and r[0] for r in results)
    assert served.alive()


def test_process_stop_leaves_no_child():
    srv = serve_process(SMOL, startup_timeout=180)
    pid = srv.pid
    assert pid in _children() and srv.names == [SMOL] and _health(srv.url)
    srv.stop()
    assert srv.process.returncode is not None and pid not in _children() and _state(pid) is None
    assert not _health(srv.url) and not srv.log_path.parent.exists()
    srv.stop()  # idempotent


def test_process_dies_with_its_parent():
    script = ("import time; from agentdistill.lm.server_process import serve_process\n"
              f"srv = serve_process({SMOL!r}, startup_timeout=180)\n"
              "print(srv.pid, srv.url, flush=True)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    pid = None
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 200)
        assert ready, "the intermediate process did not report its server"
        line = parent.stdout.readline()
        assert line, f"the intermediate process failed: {parent.stderr.read()[-3000:]}"
        pid, url = int(line.split()[0]), line.split()[1]
        assert _state(pid) is not None and _health(url)
        parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the child's own guard can act
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _state(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(pid) is None, "the server outlived its parent"
        assert not _health(url)
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid is not None and _state(pid) is not None:
            os.kill(pid, signal.SIGKILL)


def test_process_bad_model_name_fails_fast():
    before = _children()
    start = time.monotonic()
    with pytest.raises(ServerStartError, match="cannot serve 'gpt-5'.*smollm2-135m-instruct"):
        serve_process({"x": "gpt-5"}, startup_timeout=120)
    assert time.monotonic() - start < 30 and _children() <= before
