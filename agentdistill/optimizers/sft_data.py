"""Chats -> tokenized SFT examples with the loss on assistant tokens only.

A chat is the exact list of messages the student sees at inference (system, user task, then assistant turns
with observations as user turns). The text is rendered by the tokenizer's chat template - the same call
the local engine makes at inference - and the loss mask is found by message boundaries: for assistant turn
i, the text of `messages[:i]` with the generation prompt is a prefix of the full text, and the text of
`messages[:i+1]` ends the turn. Everything between (the assistant's content and its end-of-turn token) is
labelled; system, user and observation tokens get label -100. This works with any chat template that
renders a prefix of a chat as a prefix of its text (ChatML, Llama-3, ...), no `{% generation %}` markers
needed; a template that does not is refused with a clear error.

A chat is never cut: a chat longer than `max_length` tokens is dropped whole (and reported, with the length that
would fit), because a cut trajectory loses its last steps (its `final_answer`) and would teach the student to run
out of steps. Cutting at a step boundary would still train a trajectory that never finishes.

    from agentdistill.optimizers.sft_data import tokenize_chat
    ex = tokenize_chat(messages, tokenizer)       # {"input_ids", "assistant_masks", "labels"}
    tokenizer.decode([t for t, m in zip(ex["input_ids"], ex["assistant_masks"]) if m])  # = the assistant turns
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


class ChatTemplateError(ValueError):
    pass


class ChatTooLong(ValueError):
    """A chat longer than max_length tokens (it is never truncated)."""

    def __init__(self, length: int, max_length: int):
        super().__init__(f"the chat has {length} tokens, more than max_length={max_length}; a chat is never cut "
                         f"(it would lose its last steps): raise max_length to {length} or drop the chat")
        self.length, self.max_length = length, max_length


class SFTRows(list):
    """The tokenized rows of build_dataset, plus `dropped`: (chat index, token count) of every over-long chat."""

    def __init__(self, rows=(), dropped=()):
        super().__init__(rows)
        self.dropped: list[tuple[int, int]] = list(dropped)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat text exactly as the engine renders it (tokenizer's chat template, untokenized)."""
    if not messages:
        return ""
    return tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The full chat text and the character spans [start, end) of every assistant turn (with its end token)."""
    full = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        upto = render(tokenizer, messages[: i + 1])
        if not (full.startswith(upto) and upto.startswith(before)):
            raise ChatTemplateError(
                "the tokenizer's chat template does not render a prefix of a chat as a prefix of the text "
                f"(turn {i}), so assistant tokens cannot be located; use a template without history rewriting "
                "(e.g. ChatML) or pass chat_template=... to the tokenizer"
            )
        end = len(upto.rstrip("\n"))  # the newline after the end-of-turn token is template glue, not output
        spans.append((len(before), end))
    return full, spans


def tokenize_chat(messages: list[dict], tokenizer, max_length: int | None = None) -> dict[str, Any]:
    """Tokenize one chat; `assistant_masks[j] == 1` iff token j belongs to an assistant turn.

    Raises ChatTemplateError for a chat without an assistant turn (nothing to learn) or a template that
    cannot be masked by boundaries, ChatTooLong for a chat longer than max_length (never truncated).
    """
    if not any(m["role"] == "assistant" for m in messages):
        raise ChatTemplateError("a chat for SFT needs at least one assistant turn")
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = []
    for start, end in offsets:
        # a token is an assistant token when it starts inside an assistant span
        mask.append(int(any(s <= start < e for s, e in spans) and end > start))
    if max_length is not None and len(ids) > max_length:
        raise ChatTooLong(len(ids), max_length)
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    return {"input_ids": list(ids), "assistant_masks": mask, "labels": labels}


def build_dataset(chats: Iterable[list[dict]], tokenizer, max_length: int | None = None) -> SFTRows:
    """Tokenize many chats; a chat longer than max_length is dropped whole and listed in `rows.dropped`.

    Warns once per call with the max_length that would keep every chat; raises ValueError when no chat fits.
    """
    rows, dropped, n = SFTRows(), [], 0
    for i, chat in enumerate(chats):
        n += 1
        try:
            rows.append(tokenize_chat(chat, tokenizer, max_length=max_length))
        except ChatTooLong as e:
            dropped.append((i, e.length))
    rows.dropped = dropped
    if dropped:
        longest = max(length for _, length in dropped)
        if not rows:
            raise ValueError(f"every SFT chat ({n}) is longer than max_length={max_length} tokens and a chat is "
                             f"never cut; set SFT(max_length={longest}) (the longest chat's length) or shorten the "
                             "trajectories (fewer steps, a smaller sandbox output_limit)")
        logger.warning("dropped %d of %d SFT chats longer than max_length=%d tokens (a chat is never cut: it would "
                       "lose its final step); max_length=%d would keep them all", len(dropped), n, max_length,
                       longest)
    return rows


def labelled_text(row: dict, tokenizer) -> str:
    """Decode exactly the labelled tokens (for tests and for eyeballing a dataset)."""
    return tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"]) if m])
