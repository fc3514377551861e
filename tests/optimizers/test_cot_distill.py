"""CoTDistill (the CoT baseline): scripted teacher answers, store + resume, filter, training of the real student."""

import json
import re

import dspy
import pytest

from agentdistill.optimizers import SFT, CoTDistill, TrajectoryStore
from agentdistill.programs import ChainOfThoughtSolver
from tests.optimizers.fake_teacher import CountingEngine, metric, tasks


def cot_reply(messages):
    """Right on even A, wrong on odd A."""
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", messages[-1]["content"]).groups())
    return f"Add {a} and {b}.\n\nAnswer: {a + b + a % 2}"


def make_teacher(fail_on=()):
    engine = CountingEngine(fail_on, reply=cot_reply)
    solver = ChainOfThoughtSolver("question -> answer")
    solver.set_lm(dspy.LM("scripted/cot-teacher", engine=engine, cache=False))
    return solver, engine


def distiller(tmp_path, **kw):
    return CoTDistill(metric=metric, store=tmp_path / "store.jsonl", track=False,
                      sft=SFT(output_dir=str(tmp_path / "out"), max_steps=2, lora_r=8, lora_alpha=16,
                              per_device_batch_size=2, max_length=256, report_to="none"), **kw)


def test_generate_resume_and_filter(tmp_path):
    from agentdistill.optimizers.filtering import filter_answers

    trainset = tasks([2, 3, 4, 6])
    teacher, engine = make_teacher(fail_on={4})
    out = distiller(tmp_path).generate(trainset, teacher)
    assert "went away" in out[2]["error"] and out[0]["answer"] == "11"
    assert len(list(TrajectoryStore(tmp_path / "store.jsonl").records(kind="cot"))) == 3
    teacher2, engine2 = make_teacher()
    out2 = distiller(tmp_path).generate(trainset, teacher2)
    assert len(engine2.requests) == 1 and "What is 4 + 11?" in engine2.requests[0]["messages"][-1]["content"]
    kept, report = filter_answers(list(zip(trainset, out2)), metric, program=teacher2)
    assert [ex.question for ex, _ in kept] == [trainset[i].question for i in (0, 2, 3)]
    assert report.reasons["wrong_answer"] == 1


@pytest.mark.slow  # real fine-tuning + merge + reload of SmolLM2 (1-3 min on 2 shared cores)
def test_compile_trains_the_student_on_its_own_rendering(tmp_path, smollm2_path):
    import agentdistill

    student = ChainOfThoughtSolver("question -> answer", max_tokens=8)
    student.set_lm(agentdistill.local_lm(str(smollm2_path)))
    before = json.dumps(student.dump_state(), sort_keys=True, default=str)
    teacher, _ = make_teacher()
    d = distiller(tmp_path)
    compiled = d.compile(student, trainset=tasks([2, 3, 4, 6]), teacher=teacher)
    assert compiled._compiled and compiled.solve.lm.model != student.solve.lm.model
    assert json.dumps(student.dump_state(), sort_keys=True, default=str) == before
    assert d.last_report.kept == 3 and d.last_stats["sft_examples"] == 3
    chats = [json.loads(line)["messages"] for line in open(tmp_path / "out" / next(
        p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("cot-student")) / "sft_chats.jsonl")]
    assert chats[0] == student.chat({"question": "What is 2 + 9?"}, "Add 2 and 9.", "11")
    pred = compiled(question="What is 1 + 8?")  # answers through the new checkpoint
    assert compiled.solve.lm.history and compiled.solve.lm.history[-1]["model"] == compiled.solve.lm.model
    assert "answer" in pred


def test_rejects_agents_and_empty_trainsets(tmp_path):
    from agentdistill.programs import CodeAgent

    d = distiller(tmp_path)
    with pytest.raises(TypeError, match="ChainOfThoughtSolver"):
        d.compile(CodeAgent("question -> answer"), trainset=tasks([2]), teacher=make_teacher()[0])
    with pytest.raises(ValueError, match="non-empty trainset"):
        d.compile(ChainOfThoughtSolver(), trainset=[], teacher=make_teacher()[0])
