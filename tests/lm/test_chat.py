"""Prompt rendering (continuation), request conversion and stop-string cutting, on the real SmolLM2 tokenizer."""

import pytest
from dspy.lm15 import Config, Message, Request

from agentdistill.lm.chat import cut_at_stop, render_prompt, request_to_messages


def test_new_turn_and_continuation_prompts(smol_lm):
    tok = smol_lm.engine.tokenizer
    chat = [{"role": "user", "content": "Hi"}]
    assert render_prompt(tok, chat).endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    # A partial assistant turn: the prompt ends with the prefix, byte-exact (trailing space kept), no end-of-turn.
    cont = render_prompt(tok, [*chat, {"role": "assistant", "content": "Thought: "}])
    assert cont.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nThought: ")
    # Explicitly not continuing: the assistant message is a finished turn and a new one starts.
    new = render_prompt(tok, [*chat, {"role": "assistant", "content": "Hello"}], continue_final_message=False)
    assert new.endswith("assistant\nHello<|im_end|>\n<|im_start|>assistant\n")


def test_continue_requires_assistant_last(smol_lm):
    with pytest.raises(ValueError, match="role 'assistant'"):
        render_prompt(smol_lm.engine.tokenizer, [{"role": "user", "content": "x"}], continue_final_message=True)
    with pytest.raises(ValueError, match="non-empty list"):
        render_prompt(smol_lm.engine.tokenizer, [])


def test_request_to_messages_maps_system_and_roles():
    request = Request(model="local/x", system="be brief", config=Config(),
                      messages=(Message.user("q"), Message.assistant("a"), Message.developer("d")))
    assert request_to_messages(request) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "d"}]


def test_cut_at_stop_takes_earliest_stop():
    assert cut_at_stop("abc\nObservation: x\nEND", ["END", "\nObservation:"]) == ("abc", True)
    assert cut_at_stop("abc", ["zz"]) == ("abc", False)
    assert cut_at_stop("abc", None) == ("abc", False)
