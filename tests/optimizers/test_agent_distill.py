"""AgentDistill end to end with a scripted teacher (driving the real CodeAgent loop + sandbox) and the real
SmolLM2-135M student: generation, resume, filtering, SFT chats, training, the compiled student, MLflow."""

import json

import dspy
import pytest

from agentdistill.optimizers import SFT, AgentDistill, TrajectoryStore
from agentdistill.optimizers.agent_distill import student_chat
from agentdistill.programs import CodeAgent
from tests.optimizers.fake_teacher import PREFIX, metric, tasks, teacher_lm
from tests.programs.scripted import scripted_lm

# a % 5: 0 right, 1 wrong answer, 2 parse error first, 3 out of steps, 4 execution error then right
NUMBERS = [10, 11, 12, 13, 14, 20]


def make_teacher(fail_on=()):
    lm, engine = teacher_lm(fail_on)
    agent = CodeAgent("question -> answer", max_steps=3)
    agent.set_lm(lm)
    return agent, engine


def distiller(tmp_path, track=False, **kw):
    return AgentDistill(metric=metric, store=tmp_path / "store.jsonl", num_threads=2, track=track,
                        sft=SFT(output_dir=str(tmp_path / "out"), max_steps=2, lora_r=8, lora_alpha=16,
                                per_device_batch_size=2, max_length=768, report_to="mlflow" if track else "none"),
                        **kw)


def test_generation_stores_prefixes_and_trajectories_and_resumes(tmp_path):
    trainset = tasks(NUMBERS)
    # the scripted teacher fails on the task whose first number is 14: an interrupted generation
    teacher, engine = make_teacher(fail_on={14})
    d = distiller(tmp_path)
    trajs = d.generate(trainset, teacher)
    assert set(trajs[4]) == {"error"} and "teacher server went away on task 14" in trajs[4]["error"]
    assert all("steps" in t for i, t in enumerate(trajs) if i != 4)
    first_questions = engine.questions()
    assert (14, 21) in first_questions  # it was asked (and failed)
    store = TrajectoryStore(tmp_path / "store.jsonl")
    kinds = sorted((r["kind"], r["example_id"].split("-")[0]) for r in store.records())
    assert kinds.count(("prefix", "0")) == 1 and ("trajectory", "4") not in kinds
    assert len([k for k in kinds if k[0] == "trajectory"]) == 5
    # a kill -9 in the middle of the next write leaves a torn line
    with open(tmp_path / "store.jsonl", "a") as f:
        f.write('{"kind": "trajectory", "exam')

    teacher2, engine2 = make_teacher()
    trajs2 = distiller(tmp_path).generate(trainset, teacher2)
    assert {q for q in engine2.questions()} == {(14, 21)}  # only the missing task is asked again
    assert trajs2[4]["finished"] and trajs2[4]["final_answer"] in (35, "35")
    assert [t["messages"] for t in trajs2[:4]] == [t["messages"] for t in trajs[:4]]  # the rest reused as is

    teacher3, engine3 = make_teacher()
    distiller(tmp_path).generate(trainset, teacher3)
    assert engine3.requests == []  # everything stored: the teacher is asked nothing


def test_prefix_seeds_the_first_thought_and_is_stored(tmp_path):
    teacher, engine = make_teacher()
    traj = distiller(tmp_path).generate(tasks([10]), teacher)[0]
    assert traj["first_thought_prefix"] == PREFIX + "\nThen I print the sum."
    assert traj["steps"][0]["text"].startswith("Thought: " + PREFIX)
    assert engine.requests[1]["messages"][-1] == {"role": "assistant", "content": "Thought: " + traj[
        "first_thought_prefix"]}
    no_prefix, engine2 = make_teacher()
    traj2 = distiller(tmp_path, first_thought_prefix=False).generate(tasks([10]), no_prefix)[0]
    assert traj2["first_thought_prefix"] is None and len(engine2.requests) == 2  # new settings: asked again


def test_filter_keeps_exactly_the_good_trajectories(tmp_path):
    from agentdistill.optimizers.filtering import filter_trajectories

    trainset = tasks(NUMBERS)
    teacher, _ = make_teacher()
    trajs = distiller(tmp_path).generate(trainset, teacher)
    kept, report = filter_trajectories(list(zip(trainset, trajs)), metric)
    assert sorted(ex.question for ex, _ in kept) == sorted(trainset[i].question for i in (0, 4, 5))
    s = report.summary()
    assert s["dropped_by"] == {"teacher_error": 0, "parse_error": 1, "out_of_steps": 1, "no_final_answer": 0,
                               "wrong_answer": 1}
    assert s["kept_with_execution_errors"] == 1  # the recovered one stays


def test_sft_chat_is_byte_identical_to_what_the_student_sees(tmp_path, smollm2_tokenizer):
    from agentdistill.lm.chat import render_prompt
    from agentdistill.optimizers.sft_data import render

    teacher, _ = make_teacher()
    traj = distiller(tmp_path).generate(tasks([14]), teacher)[0]  # execution error, then right: 3 steps
    student = CodeAgent("question -> answer", max_steps=3)
    chat = student_chat(student, traj)
    assert chat == traj["messages"]  # same program settings -> the teacher's own chat
    # replay the teacher's steps through the STUDENT program: every prompt it sends (which may end with a partial
    # assistant turn that the model continues) is a prefix of the SFT chat, message by message and as text
    texts = iter(s["text"] for s in traj["steps"])

    def replay(messages):
        text = next(texts)
        partial = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        assert text.startswith(partial)
        return text[len(partial):]

    lm, engine = scripted_lm([replay] * len(traj["steps"]))
    student.set_lm(lm)
    student(question=tasks([14])[0].question)
    full_text = render(smollm2_tokenizer, chat)
    for request in engine.requests:
        sent = request["messages"]
        n = len(sent) - (sent[-1]["role"] == "assistant")  # complete messages before a partial assistant turn
        assert chat[:n] == sent[:n] and chat[n]["role"] == "assistant"
        if n < len(sent):
            assert chat[n]["content"].startswith(sent[-1]["content"])
        prompt = render_prompt(smollm2_tokenizer, sent)  # the engine's prompt text for this request
        assert full_text.startswith(prompt)
    assert len(engine.requests) == sum(1 for m in chat if m["role"] == "assistant")


def test_compile_refuses_bad_inputs_with_clear_errors(tmp_path):
    from agentdistill.programs import ChainOfThoughtSolver

    d = distiller(tmp_path)
    teacher, _ = make_teacher()
    with pytest.raises(ValueError, match="non-empty trainset"):
        d.compile(CodeAgent(), trainset=[], teacher=teacher)
    with pytest.raises(TypeError, match="CoTDistill"):
        d.compile(ChainOfThoughtSolver(), trainset=tasks([10]), teacher=teacher)
    student = CodeAgent()
    student.set_lm(dspy.LM("openai/gpt-4o-mini"))
    with pytest.raises(ValueError, match="cannot fine-tune the student LM"):
        d.compile(student, trainset=tasks([10]), teacher=teacher)


def test_every_task_failing_is_reported_with_its_cause(tmp_path):
    teacher, _ = make_teacher(fail_on={10, 11})
    with pytest.raises(RuntimeError, match="every task failed.*teacher server went away"):
        distiller(tmp_path).generate(tasks([10, 11]), teacher)


@pytest.fixture(scope="module")
def smollm2_student(smollm2_path):
    import agentdistill

    student = CodeAgent("question -> answer", max_steps=2, max_tokens=24)
    student.set_lm(agentdistill.local_lm(str(smollm2_path)))
    return student


@pytest.mark.slow  # real fine-tuning + merge + reload of SmolLM2 and a compiled run (1-3 min on 2 shared cores)
def test_compile_end_to_end(tmp_path, smollm2_student, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    student = smollm2_student
    before = json.dumps(student.dump_state(), sort_keys=True, default=str)
    student_lm = student.step.lm
    trainset = tasks(NUMBERS)
    teacher, engine = make_teacher()
    d = distiller(tmp_path, track=True)
    compiled = d.compile(student, trainset=trainset, teacher=teacher)

    # a new program on a new LM for the trained checkpoint; the input student is untouched
    assert compiled is not student and compiled._compiled and not getattr(student, "_compiled", False)
    assert student.step.lm is student_lm and json.dumps(student.dump_state(), sort_keys=True, default=str) == before
    model_dir = d.last_stats["model_dir"]
    assert compiled.step.lm is not student_lm and compiled.step.demos == []
    assert compiled.step.lm.model != student_lm.model and "model" in compiled.step.lm.model
    assert d.last_report.kept == 3 and d.last_stats["sft_examples"] == 3

    # the compiled program answers with the new checkpoint
    pred = compiled(question="What is 3 + 4?")
    assert pred.trajectory.steps and compiled.step.lm.history
    assert compiled.step.lm.history[-1]["model"] == compiled.step.lm.model

    # save / load (whole program) keeps the checkpoint's LM
    compiled.save(str(tmp_path / "prog"), save_program=True)
    loaded = dspy.load(str(tmp_path / "prog"), allow_pickle=True)
    assert loaded.step.lm.model == compiled.step.lm.model and loaded._compiled

    # and through MLflow's DSPy flavor
    with mlflow.start_run(run_name="log-model"):
        info = mlflow.dspy.log_model(compiled, name="program")
    reloaded = mlflow.dspy.load_model(info.model_uri)
    assert reloaded.step.lm.model == compiled.step.lm.model

    # MLflow: one parent run with child runs, params, artifacts, metrics
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert {"AgentDistill", "generation", "training"} <= set(by_name)
    parent = by_name["AgentDistill"]
    assert by_name["training"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.params["first_thought_prefix"] == "True" and parent.data.params["sft.lora_r"] == "8"
    assert parent.data.metrics["kept_trajectories"] == 3
    assert "loss" in by_name["training"].data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"filter_report.json", "store.jsonl"} <= artifacts
    assert model_dir.endswith("model")
