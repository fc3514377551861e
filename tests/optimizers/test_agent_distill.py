"""AgentDistill end to end with a scripted teacher (driving the real CodeAgent loop + sandbox) and the real
SmolLM2-135M student: generation, resume, filtering, SFT chats, training, the compiled student, MLflow."""

import json
import shutil

import dspy
import pytest

from agentdistill.optimizers import SFT, AgentDistill, CoTDistill, TrajectoryStore
from agentdistill.optimizers.agent_distill import student_chat, with_instructions
from agentdistill.programs import ChainOfThoughtSolver, CodeAgent, cot_chat
from agentdistill.programs.cot import DEFAULT_COT_INSTRUCTIONS
from tests.optimizers.fake_teacher import PREFIX, metric, tasks, teacher_lm
from tests.programs.scripted import scripted_lm
from tests.tracking.store import mlflow_store  # noqa: F401  (a temporary MLflow sqlite store)

# a % 5: 0 right, 1 wrong answer, 2 parse error first, 3 out of steps, 4 execution error then right
NUMBERS = [10, 11, 12, 13, 14, 20]


def make_teacher(fail_on=(), **agent_kw):
    lm, engine = teacher_lm(fail_on)
    agent = CodeAgent("question -> answer", **{"max_steps": 3, **agent_kw})
    agent.set_lm(lm)
    return agent, engine


def is_cot_call(request):
    return "Think step by step" in request["messages"][0]["content"]


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
    # the prefixes' CoT answers are stored as CoTDistill stores them; the failed task has neither record
    assert kinds.count(("cot", "0")) == 1 and ("trajectory", "4") not in kinds and ("cot", "4") not in kinds
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


def test_prefix_is_the_first_paragraph_of_the_plain_cot_seeded_with_its_paragraph_break(tmp_path):
    # the teacher agent has its own instructions and a worked example: neither may reach the prefix's CoT prompt
    teacher, engine = make_teacher(instructions="Use sympy for exact arithmetic.")
    traj = distiller(tmp_path).generate(tasks([10]), teacher)[0]
    cot, step1 = engine.requests[0], engine.requests[1]
    # the paper's prefix: the teacher's plain reasoning prompt (the CoT baseline's), generated in full
    assert cot["messages"] == cot_chat(DEFAULT_COT_INSTRUCTIONS, {"question": "What is 10 + 17?"})
    assert not any("Example:" in m["content"] or "sympy" in m["content"] or "final_answer" in m["content"]
                   for m in cot["messages"])
    assert cot["max_tokens"] is None and "\n\n" not in cot["stop"]
    # the agent's first step continues "Thought: <first paragraph>\n\n" (build_prefix_memory.py), not mid-paragraph
    assert step1["messages"][-1] == {"role": "assistant", "content": "Thought: " + PREFIX + "\n\n"}
    assert traj["steps"][0]["text"].startswith("Thought: " + PREFIX + "\n\n")
    no_prefix, engine2 = make_teacher(instructions="Use sympy for exact arithmetic.")
    traj2 = distiller(tmp_path, first_thought_prefix=False).generate(tasks([10]), no_prefix)[0]
    assert traj2["first_thought_prefix"] is None and len(engine2.requests) == 2  # new settings: asked again
    assert not any(is_cot_call(r) for r in engine2.requests)


def test_one_cot_pass_serves_the_prefixes_and_cot_distill(tmp_path):
    trainset = tasks([10, 20, 30])
    teacher, engine = make_teacher()
    trajs = distiller(tmp_path).generate(trainset, teacher)
    asked = len(engine.requests)
    assert sum(map(is_cot_call, engine.requests)) == 3
    # CoTDistill on the same store and the same teacher LM, with the baseline's own solver, asks the teacher nothing
    solver = ChainOfThoughtSolver("question -> answer")
    solver.set_lm(teacher.step.lm)
    cot = CoTDistill(metric=metric, store=tmp_path / "store.jsonl", track=False)
    answers = cot.generate(trainset, solver)
    assert len(engine.requests) == asked and cot.last_stats["teacher_calls"] == 0
    assert [a["answer"] for a in answers] == ["27", "47", "67"]
    assert all(a["reasoning"].split("\n\n")[0] == PREFIX == t["first_thought_prefix"].strip()
               for a, t in zip(answers, trajs))
    # and the other way round: CoT answers stored by CoTDistill make the prefixes without asking again
    fresh = tmp_path / "other"
    fresh.mkdir()
    teacher2, engine2 = make_teacher()
    solver2 = ChainOfThoughtSolver("question -> answer")
    solver2.set_lm(teacher2.step.lm)
    CoTDistill(metric=metric, store=fresh / "store.jsonl", track=False).generate(trainset, solver2)
    n_cot = len(engine2.requests)
    d = distiller(fresh)
    d.generate(trainset, teacher2)
    assert not any(is_cot_call(r) for r in engine2.requests[n_cot:]) and d.last_stats["teacher_calls_cot"] == 0


def test_store_key_changes_with_every_input_that_shapes_a_trajectory(tmp_path, monkeypatch):
    from agentdistill.optimizers import store as store_module
    from agentdistill.tools.retrieval import ColBERTSearch

    lm, _ = teacher_lm()
    d = distiller(tmp_path)
    index_a = ColBERTSearch(url="http://127.0.0.1:9/a", k=5)  # a remote index: nothing is loaded or reached

    def key(tools=(index_a,), **kw):
        agent = CodeAgent("question -> answer", max_steps=3, tools=list(tools), **kw)
        agent.set_lm(lm)
        return d.trajectory_settings(agent, lm)

    def search_in(index):
        def search(query: str) -> str:
            """Search the passages."""
            return index + query
        return search

    base = key()
    assert key() == base  # deterministic
    changed = {
        "output_limit": key(output_limit=1000), "timeout": key(timeout=3.0), "memory_mb": key(memory_mb=512),
        "seed_thought": key(seed_thought=False),
        "continuation": key(continuation_kwargs={"extra_body": {"continue_final_message": True}}),
        # the same tool name and docstring, with another index or passage length behind it
        "index": key(tools=[ColBERTSearch(url="http://127.0.0.1:9/b", k=5)]),
        "max_chars": key(tools=[ColBERTSearch(url="http://127.0.0.1:9/a", k=5, max_chars=200)]),
    }
    assert key(tools=[search_in("wiki")]) != key(tools=[search_in("news")])  # what a plain function closes over
    # a template file's contents: the key reads an edited copy of the templates
    edited = tmp_path / "templates"
    shutil.copytree(store_module.TEMPLATES, edited)
    (edited / "agent_step.jinja").write_text((edited / "agent_step.jinja").read_text() + "\n")
    monkeypatch.setattr(store_module, "TEMPLATES", edited)
    changed["template"] = key()
    assert [n for n, k in changed.items() if k == base] == []
    assert len(set(changed.values())) == len(changed)


def test_a_changed_sandbox_limit_misses_the_store_and_a_started_sandbox_keeps_the_key(tmp_path):
    teacher, _ = make_teacher()
    d = distiller(tmp_path)
    before = d.trajectory_settings(teacher, teacher.step.lm)
    d.generate(tasks([10]), teacher)  # starts the teacher's sandbox
    assert d.trajectory_settings(teacher, teacher.step.lm) == before
    again, engine = make_teacher()
    d.generate(tasks([10]), again)
    assert engine.requests == []
    smaller, engine2 = make_teacher(output_limit=500)
    d.generate(tasks([10]), smaller)
    assert engine2.requests and not any(is_cot_call(r) for r in engine2.requests)  # the CoT answer is reused


def test_student_prompt_is_the_short_one_by_default_and_the_input_student_is_kept(tmp_path):
    from agentdistill.programs import math_agent
    from agentdistill.programs.ready import MATH_INSTRUCTIONS

    teacher, _ = make_teacher()
    student = math_agent(max_steps=3)
    before = student.instructions
    d = distiller(tmp_path)
    assert "Example:" in before
    assert d.student_prompt(student, teacher) == MATH_INSTRUCTIONS  # the paper's short prompt: no worked example
    assert distiller(tmp_path, student_instructions="teacher").student_prompt(student, teacher) == teacher.instructions
    assert distiller(tmp_path, student_instructions=None).student_prompt(student, teacher) == before
    assert distiller(tmp_path, student_instructions="Be brief.").student_prompt(student, teacher) == "Be brief."
    with pytest.raises(ValueError, match="student_instructions"):
        distiller(tmp_path, student_instructions="")
    prompted = with_instructions(student, d.student_prompt(student, teacher))
    assert student.instructions == before and prompted.instructions == MATH_INSTRUCTIONS
    traj = d.generate(tasks([10]), teacher)[0]
    system = student_chat(prompted, traj)[0]["content"]
    # the step format and the tools stay in the system prompt; the example does not
    assert "Thought:" in system and "def final_answer" in system and MATH_INSTRUCTIONS in system
    assert "Example:" not in system and "divisors" not in system


def test_filter_keeps_exactly_the_good_trajectories(tmp_path):
    from agentdistill.optimizers.filtering import filter_trajectories

    trainset = tasks(NUMBERS)
    teacher, _ = make_teacher()
    trajs = distiller(tmp_path).generate(trainset, teacher)
    kept, report = filter_trajectories(list(zip(trainset, trajs)), metric, program=teacher)
    assert sorted(ex.question for ex, _ in kept) == sorted(trainset[i].question for i in (0, 4, 5))
    s = report.summary()
    assert s["dropped_by"] == {"teacher_error": 0, "parse_error": 1, "void_turn": 0, "out_of_steps": 1,
                               "no_final_answer": 0, "metric_error": 0, "wrong_answer": 1}
    assert s["reasons"]["void_turn"] == 1  # the reply without code is a void turn too
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
@pytest.mark.ci  # CI runs this real compile / resume too (.ci/run)
def test_compile_end_to_end(tmp_path, smollm2_student, mlflow_store):  # noqa: F811
    import mlflow

    student = smollm2_student
    before = json.dumps(student.dump_state(), sort_keys=True, default=str)
    student_lm = student.step.lm
    trainset = tasks(NUMBERS)
    teacher, engine = make_teacher()
    d = distiller(tmp_path, track=True)
    compiled = d.compile(student, trainset=trainset, teacher=teacher, valset=tasks([10]))

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

    # the student's prompt is the paper's short one (no worked example) in the SFT chats and at inference alike
    assert compiled.instructions == "Solve the task." and "Example:" in student.instructions
    chats = [json.loads(line)["messages"] for path in tmp_path.rglob("sft_chats.jsonl") for line in open(path)]
    assert len(chats) == 3 and all(c[0]["content"].endswith("\n\nSolve the task.") for c in chats)
    systems = [h["messages"][0]["content"] for h in compiled.step.lm.history]  # (an out-of-steps ask has its own)
    assert chats[0][0]["content"] in systems and not any("Example:" in text for text in systems)

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
    assert parent.data.params["first_thought_prefix"] == "true" and parent.data.params["sft.lora_r"] == "8"
    assert parent.data.metrics["kept_trajectories"] == 3 and parent.data.metrics["trajectories"] == 6
    assert parent.data.tags["agentdistill.kind"] == "compile"
    # the valset score under the documented name (agentdistill.tracking), on the parent and its evaluation child
    assert parent.data.metrics["accuracy/val"] == by_name["evaluation"].data.metrics["accuracy/val"]
    assert parent.data.metrics["accuracy/val"] == d.last_stats["val_accuracy"]
    # the checkpoint is a logged model of the compile run, and the valset score is linked to it and its questions
    model = mlflow.get_logged_model(d.last_stats["model_id"])
    assert model.tags["agentdistill.student_model"] == compiled.step.lm.model == model.params["student_model"]
    assert model.source_run_id == parent.info.run_id
    assert {m.dataset_name for m in model.metrics if m.key == "accuracy/val"} == {"val"}
    assert "loss" in by_name["training"].data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"filter_report.json", "store.jsonl"} <= artifacts
    # logged after training, so it has what training found (helper A's `truncated`) and the new reasons
    report = json.loads(open(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                                  artifact_path="filter_report.json",
                                                                  dst_path=str(tmp_path / "dl"))).read())
    assert report["truncated"] == 0 and report["kept"] == 3 and "void_turn" in report["reasons"]
    assert model_dir.endswith("model")


def test_the_teacher_generates_without_the_out_of_steps_ask(tmp_path):
    # out-of-steps trajectories are dropped by the filter whatever they answer: asking the teacher for a final
    # answer there (the agent's default at evaluation) would only cost a teacher call per such task
    teacher, engine = make_teacher()
    assert teacher.final_answer_on_max_steps
    d = distiller(tmp_path, first_thought_prefix=False)
    (traj,) = d.generate(tasks([13]), teacher)  # 13 % 5 == 3: the scripted teacher runs out of steps
    assert traj["out_of_steps"] and traj.get("forced_answer") is None
    assert len(engine.requests) == teacher.max_steps  # one call per step, no final ask
    assert teacher.final_answer_on_max_steps  # the input teacher is unchanged
