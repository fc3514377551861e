"""What the STUDENT sees at inference == the SFT data built from the TEACHER's trajectory (the one-renderer contract).

Teacher and student are different programs, as in a real distillation: the teacher has a long prompt with a worked
example and one tool, the student its own short instructions and one more tool. The SFT chat is the teacher's steps
and observations under the student's system prompt, and every prompt the student is sent at inference - as
messages, and as the token ids the local engine feeds the model - is a prefix of it.
"""

import pytest
from scripted import scripted_lm

from agentdistill.programs import ChainOfThoughtSolver, CodeAgent
from agentdistill.programs.rendering import render_system

CAPITALS = {"France": "Paris"}


def capital_of(country: str) -> str:
    """The capital city of a country."""
    return CAPITALS[country]


def population_of(country: str) -> int:
    """The population of a country."""
    return 68_000_000


PREFIX = "First,"
STEPS = [
    " I look up the capital.\n```python\ncity = capital_of('France')\nprint(city)\n```",
    "Thought: Found it.\n```python\nfinal_answer(city)\n```",
]


def teacher_program():
    return CodeAgent("question -> answer", tools=[capital_of], max_steps=3,
                     instructions="You are a meticulous geography expert. Look every fact up before you answer.")


def student_program():
    return CodeAgent("question -> answer", tools=[capital_of, population_of], max_steps=3,
                     instructions="Answer the question.", example=None)


def replay(steps):
    """A scripted reply per step that re-plays the teacher's recorded turns: the model continues the partial turn
    the program sent, so it returns the rest of the recorded text."""
    texts = iter(steps)

    def reply(messages):
        text = next(texts)
        partial = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        assert text.startswith(partial), (text, partial)
        return text[len(partial):]

    return reply


@pytest.fixture(scope="module")
def episode():
    from agentdistill.optimizers.agent_distill import student_chat

    teacher = teacher_program()
    lm, _ = scripted_lm(list(STEPS))
    teacher.set_lm(lm)
    traj = teacher(question="Capital of France?", first_thought_prefix=PREFIX).trajectory
    teacher.close()
    assert traj.finished

    student = student_program()
    chat = student_chat(student, traj.to_dict())  # what AgentDistill trains the student on
    lm, engine = scripted_lm([replay([s.text for s in traj.steps])] * len(traj.steps))
    student.set_lm(lm)
    seen = student(question="Capital of France?", first_thought_prefix=PREFIX).trajectory
    student.close()
    return teacher, student, traj, chat, seen, engine.requests


def test_sft_chat_is_the_students_conversation_not_the_teachers(episode):
    teacher, student, traj, chat, seen, requests = episode
    assert teacher.instructions != student.instructions and teacher.tool_specs != student.tool_specs
    assert chat[0] == {"role": "system", "content": render_system(student.instructions, student.tool_specs)}
    assert chat[0] != traj.messages[0] and "def population_of" in chat[0]["content"]
    assert chat[1:] == traj.messages[1:]  # the teacher's task, steps and observations
    assert seen.messages == chat  # the student, re-playing the teacher's steps, holds exactly this conversation
    for request in requests:
        prompt = request["messages"]
        if prompt[-1]["role"] == "assistant":  # the partial "Thought:" / "Thought: <prefix>" the model continues
            assert chat[len(prompt) - 1]["content"].startswith(prompt[-1]["content"])
            prompt = prompt[:-1]
        assert chat[: len(prompt)] == prompt
    assert requests[0]["messages"][-1]["content"] == "Thought: " + PREFIX


def test_cot_sft_chat_is_the_solvers_conversation():
    lm, engine = scripted_lm(["Two and two.\nAnswer: 4"])
    solver = ChainOfThoughtSolver()
    solver.set_lm(lm)
    pred = solver(question="2+2?")
    assert solver.chat({"question": "2+2?"}, pred.reasoning, pred.answer) == pred.messages  # CoTDistill's chats
    assert pred.messages[:-1] == engine.requests[0]["messages"]


def _spy_fed_tokens(engine, monkeypatch) -> list[list[int]]:
    """Record the token ids the engine hands its model (the transformers model's generate, the llama.cpp decode
    loop's prompt tokens); the calls go through unchanged."""
    fed = []
    loaded = engine.load()
    if hasattr(loaded, "decoder"):
        real = loaded.decoder.tokenize

        def tokenize(text):
            fed.append(real(text))
            return fed[-1]

        monkeypatch.setattr(loaded.decoder, "tokenize", tokenize)
    else:
        real = loaded.model.generate

        def generate(*args, **kwargs):
            fed.append(kwargs["input_ids"][0].tolist())
            return real(*args, **kwargs)

        monkeypatch.setattr(loaded.model, "generate", generate)
    return fed


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["transformers", "llama.cpp"])
def test_sft_tokens_start_with_the_tokens_the_engine_feeds_the_model(episode, backend, monkeypatch):
    """Token level: each step's prompt, as the engine tokenizes it for the model, is a prefix of the tokenized SFT
    row, and the next token of the row (what the model must generate there) is a trained assistant token."""
    from transformers import AutoTokenizer

    import agentdistill
    from agentdistill.lm import local_engine, resolve_model_path
    from agentdistill.optimizers.sft_data import tokenize_chat

    _, _, _, chat, _, requests = episode
    row = tokenize_chat(chat, AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m-instruct")))
    engine = local_engine(agentdistill.local_lm("smollm2-135m-instruct", backend=backend))
    fed = _spy_fed_tokens(engine, monkeypatch)
    for request in requests:
        engine.generate(request["messages"], max_tokens=1)
    assert len(fed) == len(requests) == 2
    for ids in fed:
        assert row["input_ids"][: len(ids)] == ids
        assert row["assistant_masks"][len(ids)] == 1
    assert row["assistant_masks"][len(fed[0]) - 1] == 1  # the partial "Thought: First," fed at step 1 is trained
