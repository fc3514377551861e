"""`server_lm`: a dspy.LM on an OpenAI-compatible server that continues a partial assistant turn.

    from agentdistill.lm import server_lm, continuation_kwargs
    teacher = server_lm("Qwen/Qwen2.5-32B-Instruct", "http://gpu:8000/v1")                    # vLLM (default)
    teacher = server_lm("qwen2.5-coder-1.5b", "http://127.0.0.1:8080/v1", server="llama.cpp")  # llama-server
    continuation_kwargs(teacher)  # {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}

Why: every CodeAgent step ends its prompt with a partial assistant turn ("Thought:", or "Thought: <first-thought
prefix>" on step 1) that the model must continue. An OpenAI-compatible server only continues it when told to
(vLLM's default renders it as a finished turn and opens a new one), so the LM carries the switches its server
needs, and `AgentAdapter` and `SelfConsistency` add them to exactly the calls whose last message is a partial
assistant turn (never to others: vLLM refuses `continue_final_message` after a user message).

How each server continues a trailing assistant message:
    vllm, sglang    extra_body={"continue_final_message": True, "add_generation_prompt": False} (vLLM renders with
                    transformers' continue_final_message, which strips the prefix's trailing whitespace)
    llama.cpp       llama-server treats a trailing assistant message as prefill by default: nothing to send
    agentdistill    our own server (agentdistill.lm.server) honours vLLM's switches; sent explicitly
The settings live on the LM object (attribute `continuation_kwargs`): copies, deepcopies and pickles keep them;
`dump_state()` (DSPy's JSON save) does not - rebuild the LM with `server_lm` after loading such a program.
"""

from __future__ import annotations

import copy
import logging
import os

logger = logging.getLogger(__name__)

_VLLM_STYLE = {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}}
CONTINUATION: dict[str, dict] = {"vllm": _VLLM_STYLE, "sglang": _VLLM_STYLE, "agentdistill": _VLLM_STYLE,
                                 "llama.cpp": {}}
SERVERS = tuple(CONTINUATION)
ATTRIBUTE = "continuation_kwargs"  # where an LM carries its settings (read by continuation_kwargs(lm))
_OPENAI_COMPATIBLE = ("openai/", "hosted_vllm/")  # litellm prefixes that speak the OpenAI chat protocol
_warned: set[str] = set()


def server_lm(model: str, api_base: str, server: str = "vllm", *, api_key: str | None = None, **lm_kwargs):
    """A `dspy.LM` for a model on an OpenAI-compatible server, carrying the server's continuation settings.

    Args:
        model: the served model's name as the server lists it at /v1/models ("Qwen/Qwen2.5-32B-Instruct"); an
            "openai/" or "hosted_vllm/" prefix is kept, anything else gets "openai/" in front.
        api_base: the server's OpenAI base URL, e.g. "http://gpu:8000/v1".
        server: "vllm" (default; also right for any server that follows vLLM's switches), "sglang",
            "llama.cpp" (llama-server) or "agentdistill" (`agentdistill models serve`).
        api_key: the server's key; default: $OPENAI_API_KEY if set, else a placeholder (servers started without
            --api-key accept any).
        **lm_kwargs: dspy.LM arguments (temperature, max_tokens, cache, num_retries, ...). `engine` defaults to
            "litellm" where the switches travel in the request body (DSPy's native engine refuses `extra_body`).

    Example:
        >>> teacher = server_lm("Qwen/Qwen2.5-32B-Instruct", "http://127.0.0.1:8000/v1", temperature=0.0)
        >>> teacher.model, continuation_kwargs(teacher)["extra_body"]["continue_final_message"]
        ('openai/Qwen/Qwen2.5-32B-Instruct', True)
    """
    import dspy

    if server not in CONTINUATION:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, got {server!r}")
    if not api_base or not str(api_base).startswith(("http://", "https://")):
        raise ValueError(f"api_base must be the server's URL, e.g. 'http://127.0.0.1:8000/v1', got {api_base!r}")
    name = model if model.startswith(_OPENAI_COMPATIBLE) else f"openai/{model}"
    settings = CONTINUATION[server]
    if settings.get("extra_body"):
        engine = lm_kwargs.setdefault("engine", "litellm")
        if engine == "lm15":
            raise ValueError(f"server={server!r} continues a partial turn through extra_body, which DSPy's native "
                             "engine (engine='lm15') refuses; use engine='litellm' (the default here) or 'auto'")
    if api_key is None and not os.environ.get("OPENAI_API_KEY"):
        api_key = "local"  # the OpenAI client refuses to send no key at all
    lm = dspy.LM(name, api_base=api_base, api_key=api_key, **lm_kwargs)
    return set_continuation(lm, settings)


def set_continuation(lm, settings: dict | str):
    """Make `lm` carry continuation settings (a server name of `SERVERS`, or the call kwargs); returns `lm`."""
    if isinstance(settings, str):
        if settings not in CONTINUATION:
            raise ValueError(f"server must be one of {', '.join(SERVERS)}, got {settings!r}")
        settings = CONTINUATION[settings]
    setattr(lm, ATTRIBUTE, copy.deepcopy(dict(settings)))
    return lm


def continuation_kwargs(lm) -> dict:
    """Extra call kwargs that make `lm` continue a trailing (partial) assistant message; {} if it needs none.

    The local engines continue natively; an LM built by `server_lm` (or given `set_continuation`) carries its
    own. Any other LM gets {} - and, when it talks to a server (api_base), a one-time warning that its partial
    turns may be answered as finished ones.
    """
    from agentdistill.lm.local import local_engine

    if lm is None or local_engine(lm) is not None:
        return {}
    settings = getattr(lm, ATTRIBUTE, None)
    if settings is not None:
        return copy.deepcopy(settings)
    api_base = (getattr(lm, "kwargs", None) or {}).get("api_base")
    if api_base and lm.model not in _warned:
        _warned.add(lm.model)
        logger.warning("%s (at %s) has no continuation settings: a partial assistant turn (the agent's 'Thought:' "
                       "seed, the first-thought prefix) may be answered as a finished turn. Build it with "
                       "agentdistill.lm.server_lm(model, api_base, server=...)", lm.model, api_base)
    return {}


def add_continuation(kwargs: dict, extra: dict, lm=None) -> dict:
    """`kwargs` + `extra` (continuation settings), with `extra_body` merged rather than replaced: a call-level
    extra_body would otherwise hide the LM's own (dspy merges call kwargs over lm.kwargs one level deep)."""
    out = {**kwargs, **extra}
    if extra.get("extra_body"):
        own = (getattr(lm, "kwargs", None) or {}).get("extra_body") or {}
        out["extra_body"] = {**own, **(kwargs.get("extra_body") or {}), **extra["extra_body"]}
    return out
