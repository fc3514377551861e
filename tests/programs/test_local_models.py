"""End to end with the shipped local models (CPU, minutes): run with `pytest -m slow tests/programs`."""

import os
import tempfile
from pathlib import Path

import pytest

import agentdistill
from agentdistill.programs import SelfConsistency, math_agent, trajectory_to_chat
from agentdistill.programs.self_consistency import normalize

pytestmark = pytest.mark.slow


def test_teacher_solves_a_trivial_math_question_with_code():
    agent = math_agent(max_steps=3, max_tokens=256)
    agent.set_lm(agentdistill.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp"))
    try:
        pred = agent(question="What is 12 * 7 + 5?")
    finally:
        agent.close()
    traj = pred.trajectory
    assert traj.steps and traj.steps[0].code is not None, traj.steps[0].raw  # the format is followed
    assert traj.finished and normalize(pred.answer) == "89", traj.to_json(indent=1)
    assert traj.messages == trajectory_to_chat(traj)


def test_student_runs_under_self_consistency_with_a_prefix():
    agent = math_agent(max_steps=2, max_tokens=96)
    agent.set_lm(agentdistill.local_lm("smollm2-135m-instruct"))
    try:
        pred = SelfConsistency(agent, n=4)(question="What is 3 + 4?", first_thought_prefix="I will add 3 and 4")
    finally:
        agent.close()
    first = pred.trajectory.steps[0]
    assert first.text.startswith("Thought: I will add 3 and 4")
    assert len(first.candidates) == 4 and 0.0 <= first.valid_fraction <= 1.0
    parsed = [c for c in first.candidates if c["parse_error"] is None]
    assert all(c["text"].startswith("Thought: I will add 3 and 4") for c in parsed)


def test_teacher_searches_a_colbert_index_from_sandboxed_code(tmp_path, monkeypatch):
    """factual_agent + the real retrieval tool: the search runs on the host, called from the sandboxed code."""
    from agentdistill.programs import factual_agent
    from agentdistill.tools.retrieval import ColBERTSearch
    from agentdistill.tools.retrieval.checkpoint import init_checkpoint, minilm_path

    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path))
    # colbert's C++ extensions: compiled once per machine into the folder the retrieval tests use (minutes if not)
    extensions = Path(tempfile.gettempdir()) / f"agentdistill-test-torch-ext-{os.getuid()}"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    corpus = Path(__file__).parents[1] / "tools" / "retrieval" / "data" / "tiny_corpus.jsonl"
    checkpoint = init_checkpoint(minilm_path(), tmp_path / "checkpoint")  # MiniLM, untrained ColBERT head
    search = ColBERTSearch.build(corpus, name="tiny", checkpoint=str(checkpoint), progress=False, k=2)
    search.search("warm up", k=1)  # load the index now: a first query inside a step would count against its timeout
    agent = factual_agent(search, max_steps=2, max_tokens=160)
    agent.set_lm(agentdistill.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp"))
    try:
        pred = agent(question="In which year was Kansas City, Missouri founded?")
    finally:
        agent.close()
    calls = [c for s in pred.trajectory.steps for c in s.tool_calls]
    assert calls and calls[0]["name"] == "search", pred.trajectory.to_json(indent=1)
    assert calls[0]["result"] in pred.trajectory.steps[0].observation  # the passages came back to the model
