"""The trajectory store: keyed lookups, append + fsync, resume, a torn last line after kill -9."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import dspy
import pytest

from agentdistill.optimizers.store import TrajectoryStore, example_id, settings_hash


def test_put_get_and_reload(tmp_path):
    path = tmp_path / "sub" / "store.jsonl"
    s = TrajectoryStore(path)
    h = settings_hash(teacher="t", prefix=True, max_steps=5)
    s.put("trajectory", "ex1", h, {"final_answer": "4"})
    s.put("prefix", "ex1", h, {"prefix": "First"})
    assert s.get("trajectory", "ex1", h) == {"final_answer": "4"}
    assert s.get("trajectory", "ex1", settings_hash(teacher="t", prefix=False, max_steps=5)) is None
    again = TrajectoryStore(path)
    assert again.get("prefix", "ex1", h) == {"prefix": "First"}
    assert [r["kind"] for r in again.records()] == ["trajectory", "prefix"]
    assert len(path.read_text().splitlines()) == 2


def test_settings_hash_is_order_independent_and_sensitive():
    assert settings_hash(a=1, b=2) == settings_hash(b=2, a=1)
    assert settings_hash(a=1, b=2) != settings_hash(a=1, b=3)


def test_example_id_uses_id_and_inputs():
    a = dspy.Example(id=0, question="1+1?", answer="2").with_inputs("question")
    b = dspy.Example(id=0, question="2+2?", answer="4").with_inputs("question")
    c = dspy.Example(question="1+1?", answer="2").with_inputs("question")
    assert example_id(a) != example_id(b)  # same numeric id, different question
    assert example_id(a).startswith("0-")
    assert example_id(a) == example_id(a.copy())
    assert example_id(c) and not example_id(c).startswith("0-")


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "s.jsonl"
    s = TrajectoryStore(path)
    s.put("trajectory", "a", "h", {"x": 1})
    with open(path, "a") as f:  # what a kill in the middle of a write leaves behind
        f.write('{"kind": "trajectory", "example_id": "b", "settings_ha')
    s2 = TrajectoryStore(path)
    assert s2.torn_lines == 1 and s2.has("trajectory", "a", "h") and not s2.has("trajectory", "b", "h")
    s2.put("trajectory", "c", "h", {"x": 3})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["example_id"] for line in lines] == ["a", "c"]  # torn tail cut off, valid JSONL


def test_survives_kill_9_between_appends(tmp_path):
    path = tmp_path / "k.jsonl"
    script = textwrap.dedent(f"""
        import os, sys, time
        from agentdistill.optimizers.store import TrajectoryStore
        s = TrajectoryStore({str(path)!r})
        for i in range(3):
            s.put("trajectory", str(i), "h", {{"i": i, "pad": "x" * 1000}})
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    s = TrajectoryStore(path)
    assert sorted(r["example_id"] for r in s.records()) == ["0", "1", "2"]


def test_later_record_wins(tmp_path):
    s = TrajectoryStore(tmp_path / "w.jsonl")
    s.put("trajectory", "a", "h", {"v": 1})
    s.put("trajectory", "a", "h", {"v": 2})
    assert TrajectoryStore(tmp_path / "w.jsonl").get("trajectory", "a", "h") == {"v": 2}


# --- the pieces of store keys -----------------------------------------------------------------------------------
def test_lm_settings_keep_every_generation_kwarg_and_drop_transport():
    from agentdistill.optimizers.store import lm_settings

    lm = dspy.LM("openai/m", api_key="sk-1", api_base="http://a", temperature=0.3, max_tokens=100, stop=["\n\n"])
    s = lm_settings(lm)
    assert s == {"model": "openai/m", "kwargs": {"temperature": 0.3, "max_tokens": 100, "stop": ["\n\n"]}}
    moved = dspy.LM("openai/m", api_key="sk-2", api_base="http://b", temperature=0.3, max_tokens=100, stop=["\n\n"])
    assert lm_settings(moved) == s  # another key or server address: the same outputs
    assert lm_settings(lm.copy(seed=1)) != s  # a sampling seed is not in the old 3-key list, and it shapes outputs


def test_tool_fingerprint_sees_what_backs_a_tool():
    import functools

    from agentdistill.optimizers.store import tool_fingerprint

    class Index:
        def __init__(self, path, k):
            self.path, self.k, self._cache = path, k, object()  # private state is not a setting

        def __call__(self, query: str) -> str:
            return query

    class Pinned(Index):
        def fingerprint(self):
            return {"index": "sha-1"}

    assert tool_fingerprint(Index("a", 5)) == tool_fingerprint(Index("a", 5))
    assert tool_fingerprint(Index("a", 5)) != tool_fingerprint(Index("a", 3))
    assert tool_fingerprint(Index("a", 5)) != tool_fingerprint(Index("b", 5))
    assert tool_fingerprint(Pinned("a", 5))["fingerprint"] == {"index": "sha-1"}
    assert tool_fingerprint(Pinned("a", 5)) == tool_fingerprint(Pinned("b", 3))  # its own fingerprint decides

    def search(query: str, k: int = 3) -> str:
        return query

    assert tool_fingerprint(functools.partial(search, k=5)) != tool_fingerprint(functools.partial(search, k=2))
    assert tool_fingerprint(Index("a", 5).__call__) != tool_fingerprint(Index("b", 5).__call__)
    # a corpus-sized setting counts by its size, it is not hashed whole into every key
    big = tool_fingerprint(Index(["passage"] * 50_000, 5))["settings"]["path"]
    assert big == {"type": "list", "len": 50_000}


def test_tool_fingerprint_of_a_function_is_stable_across_processes():
    script = textwrap.dedent("""
        import json
        from agentdistill.optimizers.store import tool_fingerprint
        def make(index):
            def search(query: str) -> str:
                inner = lambda q: q
                return index + inner(query)
            return search
        print(json.dumps(tool_fingerprint(make("wiki")), sort_keys=True))
    """)
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1 and "wiki" in runs.pop()


def test_template_digest_follows_the_template_files(tmp_path, monkeypatch):
    import shutil

    from agentdistill.optimizers import store as store_module

    agent, cot = store_module.template_digest("agent"), store_module.template_digest("cot")
    assert agent != cot
    copy = tmp_path / "templates"
    shutil.copytree(store_module.TEMPLATES, copy)
    monkeypatch.setattr(store_module, "TEMPLATES", copy)
    assert store_module.template_digest("agent") == agent
    (copy / "cot_system.jinja").write_text("Think.")
    assert store_module.template_digest("agent") == agent and store_module.template_digest("cot") != cot
    (copy / "task.jinja").write_text("{{ task }}")  # the task turn is in both prompts
    assert store_module.template_digest("agent") != agent


def test_merge_from_adds_only_missing_records_and_names_a_missing_file(tmp_path):
    committed = TrajectoryStore(tmp_path / "committed.jsonl")
    committed.put("trajectory", "a", "k1", {"steps": [1]})
    committed.put("cot", "a", "k2", {"answer": "4"})
    job = TrajectoryStore(tmp_path / "job.jsonl")
    job.put("trajectory", "a", "k1", {"steps": ["mine"]})  # the job's own record is kept, not overwritten
    assert job.merge_from(committed.path) == 1 and job.merge_from(committed.path) == 0
    reread = TrajectoryStore(tmp_path / "job.jsonl")
    assert reread.get("trajectory", "a", "k1") == {"steps": ["mine"]} and reread.get("cot", "a", "k2") == {"answer": "4"}
    with pytest.raises(FileNotFoundError, match="nothing.jsonl does not exist"):
        job.merge_from(tmp_path / "nothing.jsonl")
