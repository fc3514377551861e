"""Does an exported GGUF say what its checkpoint says? 20 fixed prompts, greedy decoding, token by token.

Used by the export tests (tests/lm/test_export.py) and bench/bench_export.py (results/gguf_export.json):

    from agentdistill.lm.agreement import AGREEMENT_PROMPTS, agreement_chat, llama_greedy
    ids = tokenizer.apply_chat_template(agreement_chat(AGREEMENT_PROMPTS[0]), add_generation_prompt=True)
    tokens = llama_greedy(llama_cpp.Llama(model_path=gguf), ids, eos={tokenizer.eos_token_id}, limit=32)
"""

from __future__ import annotations

# 20 fixed, varied prompts on which an export is checked against its checkpoint, greedy, token by token (the
# export tests and bench/bench_export.py): plain questions, code, a multi-turn chat
AGREEMENT_PROMPTS = [
    "What is 2+3?",
    "Write a haiku about autumn.",
    "Explain recursion in one sentence.",
    "List three primary colors.",
    "Translate 'good morning' into French.",
    "Write a Python function that reverses a string.",
    "What is the capital of Japan?",
    "Give me one tip for sleeping better.",
    "Summarize the plot of Romeo and Juliet in two sentences.",
    "What does HTTP stand for?",
    "Write a SQL query that counts the rows of a table named users.",
    "Why is the sky blue?",
    "Name a mammal that can fly.",
    "Compute 17 * 23 step by step.",
    "Write a short limerick about a cat.",
    "What is the difference between a list and a tuple in Python?",
    "Suggest a name for a bakery.",
    "How many days are in a leap year?",
    "Describe the color green to someone who cannot see.",
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help you today?"},
     {"role": "user", "content": "Tell me a joke about computers."}],
]


def agreement_chat(prompt) -> list[dict]:
    """One of AGREEMENT_PROMPTS as a chat (a plain string is one user turn)."""
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def llama_greedy(llama, ids: list[int], eos, limit: int) -> list[int]:
    """Greedy token ids of a llama_cpp.Llama after the prompt `ids`, up to `limit` or an end token (in `eos`)."""
    out = []
    for token in llama.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
        out.append(token)
        if token in eos or len(out) >= limit:
            break
    return out
