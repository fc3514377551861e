"""What the model saw at inference == the SFT data built from the trajectory (the one-renderer contract)."""

import pytest
from scripted import scripted_lm

from agentdistill.programs import ChainOfThoughtSolver, CodeAgent

STEPS = [
    " I look up the capital.\n```python\ncity = {'France': 'Paris'}['France']\nprint(city)\n```",
    "Thought: Found it.\n```python\nfinal_answer(city)\n```",
]


@pytest.fixture(scope="module")
def episode():
    agent = CodeAgent("question -> answer", max_steps=3)
    lm, engine = scripted_lm(list(STEPS))
    agent.set_lm(lm)
    pred = agent(question="Capital of France?", first_thought_prefix="First,")
    agent.close()
    return agent, pred.trajectory, engine.requests


def test_sft_chat_of_the_optimizers_is_the_agents_conversation(episode):
    from agentdistill.optimizers.agent_distill import student_chat

    agent, traj, requests = episode
    chat = student_chat(agent, traj.to_dict())  # what AgentDistill trains the student on
    assert chat == traj.messages
    for request in requests:
        seen = request["messages"]
        if seen[-1]["role"] == "assistant":  # step 1: the partial "Thought: <prefix>" the model continued
            assert chat[len(seen) - 1]["content"].startswith(seen[-1]["content"])
            seen = seen[:-1]
        assert chat[: len(seen)] == seen


def test_cot_sft_chat_is_the_solvers_conversation():
    lm, engine = scripted_lm(["Two and two.\nAnswer: 4"])
    solver = ChainOfThoughtSolver()
    solver.set_lm(lm)
    pred = solver(question="2+2?")
    assert solver.chat({"question": "2+2?"}, pred.reasoning, pred.answer) == pred.messages  # CoTDistill's chats
    assert pred.messages[:-1] == engine.requests[0]["messages"]


@pytest.mark.slow
def test_token_level_prompt_is_a_prefix_of_the_training_text(episode):
    """The engine's prompt text at each step is a prefix of the SFT text (same chat template, same bytes)."""
    from transformers import AutoTokenizer

    from agentdistill.lm import resolve_model_path
    from agentdistill.lm.chat import render_prompt
    from agentdistill.optimizers.sft_data import render

    _, traj, requests = episode
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m-instruct"))
    train_text = render(tokenizer, traj.messages)
    for request in requests:
        assert train_text.startswith(render_prompt(tokenizer, request["messages"]))
