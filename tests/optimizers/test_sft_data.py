"""SFT data: assistant-only loss mask, checked by decoding exactly the labelled tokens."""

import pytest

from agentdistill.optimizers.sft_data import (
    IGNORE_INDEX,
    ChatTemplateError,
    ChatTooLong,
    build_dataset,
    labelled_text,
    render,
    tokenize_chat,
)

CHAT = [
    {"role": "system", "content": "You solve tasks with python code."},
    {"role": "user", "content": "Task: What is 17 * 23?"},
    {"role": "assistant", "content": "Thought: multiply.\nCode:\n```py\nprint(17 * 23)\n```"},
    {"role": "user", "content": "Observation: 391"},
    {"role": "assistant", "content": "Thought: done.\nCode:\n```py\nfinal_answer(391)\n```"},
]


def test_mask_labels_exactly_the_assistant_turns(smollm2_tokenizer):
    tok = smollm2_tokenizer
    row = tokenize_chat(CHAT, tok)
    assert len(row["input_ids"]) == len(row["assistant_masks"]) == len(row["labels"])
    end = tok.convert_tokens_to_ids("<|im_end|>")
    # the labelled tokens decode to the two assistant turns, each with its end-of-turn token, nothing else
    assert labelled_text(row, tok) == CHAT[2]["content"] + "<|im_end|>" + CHAT[4]["content"] + "<|im_end|>"
    # and the masked tokens decode to everything else (system, user, observation, role headers)
    unlabelled = tok.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"]) if not m])
    assert "Observation: 391" in unlabelled and "17 * 23?" in unlabelled and "print(17" not in unlabelled
    assert "<|im_start|>assistant\n" in unlabelled  # the role header is the prompt, not the output
    assert [lab for lab, m in zip(row["labels"], row["assistant_masks"]) if not m] == [IGNORE_INDEX] * (
        len(row["labels"]) - sum(row["assistant_masks"]))
    assert sum(1 for t, m in zip(row["input_ids"], row["assistant_masks"]) if m and t == end) == 2


def test_tokens_match_the_inference_tokenization(smollm2_tokenizer):
    # the token ids the student trains on are the ids of the rendered chat (what the engine feeds it)
    tok = smollm2_tokenizer
    row = tokenize_chat(CHAT, tok)
    assert row["input_ids"] == tok(render(tok, CHAT), add_special_tokens=False)["input_ids"]
    # every inference prompt (chat up to an assistant turn + generation prompt) is a token prefix too
    prompt = tok(render(tok, CHAT[:2], add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert row["input_ids"][: len(prompt)] == prompt and not any(row["assistant_masks"][: len(prompt)])
    assert row["assistant_masks"][len(prompt)] == 1


def test_errors(smollm2_tokenizer):
    with pytest.raises(ChatTemplateError, match="assistant turn"):
        tokenize_chat(CHAT[:2], smollm2_tokenizer)


def test_a_chat_is_never_cut_an_over_long_one_is_dropped_and_reported(smollm2_tokenizer, caplog):
    # a cut chat would train the student on a trajectory without its final_answer step
    tok = smollm2_tokenizer
    short = CHAT[:3]  # one step: 58 tokens
    length = len(tokenize_chat(CHAT, tok)["input_ids"])  # two steps: 98 tokens
    with pytest.raises(ChatTooLong, match=f"{length} tokens.*max_length=60") as err:
        tokenize_chat(CHAT, tok, max_length=60)
    assert err.value.length == length
    with caplog.at_level("WARNING", logger="agentdistill.optimizers.sft_data"):
        rows = build_dataset([CHAT, short, CHAT], tok, max_length=60)
    assert rows == [tokenize_chat(short, tok)] and rows.dropped == [(0, length), (2, length)]
    assert labelled_text(rows[0], tok).endswith(short[-1]["content"] + "<|im_end|>")  # its last step, whole
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"max_length={length}" in warnings[0] and "2 of 3" in warnings[0]
    assert build_dataset([CHAT], tok, max_length=length).dropped == []  # exactly the length fits
    with pytest.raises(ValueError, match=f"every SFT chat.*max_length=60.*{length}"):
        build_dataset([CHAT], tok, max_length=60)


def test_template_that_rewrites_history_is_refused(smollm2_tokenizer):
    import copy

    tok = copy.deepcopy(smollm2_tokenizer)
    # a template that drops the system message once an assistant turn exists: prefixes stop being prefixes
    tok.chat_template = (
        "{% for m in messages %}{% if not (m.role == 'system' and messages|length > 2) %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="prefix"):
        tokenize_chat(CHAT, tok)
