"""Chat plumbing shared by the local engines: DSPy requests -> messages -> prompt text, and stop strings.

One renderer for every local backend: the model's own chat template (through its Hugging Face tokenizer), so the
transformers engine, the llama.cpp engine and the OpenAI-compatible server build byte-identical prompts.

Continuation: when the last message has role "assistant", the prompt ends with that partial assistant message
(no end-of-turn after it) and the model continues it. The prefix is kept byte-exact; transformers'
`continue_final_message=True` strips trailing whitespace of the prefix (and vLLM inherits that), we do not.
"""

from __future__ import annotations

from dataclasses import dataclass

# A marker that no chat template alters and no real message contains; used to split a rendered chat at the start
# of the final assistant message's content.
_SENTINEL = "\u2063AGENTDISTILL_CONTINUE\u2063"


@dataclass
class Completion:
    """One generated candidate."""

    text: str
    finish_reason: str  # "stop" (eos or a stop string) | "length"
    prompt_tokens: int
    completion_tokens: int


def request_to_messages(request) -> list[dict]:
    """A dspy.lm15.Request -> [{"role", "content"}] (text only: local models here are text models)."""
    from dspy.lm15 import TextPart, ThinkingPart, UnsupportedFeatureError

    if request.tools:
        raise UnsupportedFeatureError("the local engine has no native tool calling; use DSPy's ChatAdapter",
                                      feature="tools")
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(
            getattr(p, "text", "") for p in request.system)
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        texts = []
        for part in message.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ThinkingPart):
                continue  # earlier reasoning is not replayed to a text model
            else:
                raise UnsupportedFeatureError(
                    f"the local engine takes text messages only, got a {type(part).__name__} in a {message.role} "
                    "message", feature=getattr(part, "type", type(part).__name__))
        role = message.role
        if role == "developer":  # no developer role in ChatML: system at the start, a user turn later
            role = "system" if not messages else "user"
        elif role == "tool":
            role = "user"
        messages.append({"role": role, "content": "".join(texts)})
    return messages


def check_messages(messages) -> list[dict]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must be a dict with 'role' and string 'content', got {m!r:.200}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def render_prompt(tokenizer, messages, continue_final_message: bool | None = None) -> str:
    """The prompt text for `messages` under the tokenizer's chat template.

    continue_final_message: None = continue iff the last message is an assistant message; True = require it;
    False = always start a new assistant turn (a trailing assistant message is then a finished turn).
    """
    messages = check_messages(messages)
    last_is_assistant = messages[-1]["role"] == "assistant"
    if continue_final_message is None:
        continue_final_message = last_is_assistant
    if continue_final_message and not last_is_assistant:
        raise ValueError("continue_final_message=True needs the last message to have role 'assistant'")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template; the local engine needs a chat (instruct) model")
    if not continue_final_message:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = messages[-1]["content"]
    probe = [*messages[:-1], {"role": "assistant", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=False)
    cut = rendered.rfind(_SENTINEL)
    if cut < 0:
        raise ValueError("the chat template drops assistant messages; cannot continue a partial assistant turn")
    return rendered[:cut] + prefix


def cut_at_stop(text: str, stops) -> tuple[str, bool]:
    """Cut `text` before the earliest occurrence of any stop string. Returns (text, whether a stop was found)."""
    positions = [i for i in (text.find(s) for s in stops or ()) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True
