"""`local_lm` (a dspy.LM on a local model) and `sample` (n candidates of one chat, batched when possible).

    import agentdistill as ad
    from agentdistill.lm import sample
    student = ad.local_lm("smollm2-135m-instruct")                            # transformers, float32
    teacher = ad.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")  # GGUF via llama-cpp-python (fast)
    tuned = ad.local_lm("runs/sft/checkpoint")                                 # a fine-tuned folder (or LoRA adapter)
    texts = sample(student, messages, n=8, temperature=0.4, top_p=0.8, max_tokens=256, stop=["\\nObservation:"])

The DSPy model string is "local/<name>@<checkpoint hash>" (DSPy's cache key includes it): a fine-tuned checkpoint
never hits a cached answer of its base. The hash covers config, tokenizer/template and weight files (by content,
memoized by size+mtime in $AGENTDISTILL_HOME/fingerprints.json); a shipped model uses its recorded GGUF sha256.
"""

from __future__ import annotations

import contextvars
import datetime
import hashlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agentdistill.lm.engine import AsyncEngine, TransformersEngine
from agentdistill.lm.llamacpp import LlamaCppEngine
from agentdistill.lm.models import SHIPPED, converted_dir, gguf_path, resolve_model_path, tokenizer_dir
from agentdistill.settings import home

BACKENDS = ("transformers", "llama.cpp")
GGUF_TYPE = "q8_0"  # a fine-tuned folder on llama.cpp: the fastest type on CPU (README, engine section)
_FINGERPRINTED = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer.json",
                  "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "adapter_model.bin", "*.gguf")


def _file_sha(path: Path, memo: dict) -> str:
    st = path.stat()
    key = str(path.resolve())
    entry = memo.get(key)
    if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
        return entry[2]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    memo[key] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
    return h.hexdigest()


def fingerprint(path: str | Path) -> str:
    """12 hex digits identifying a checkpoint folder (or GGUF file) by content."""
    path = Path(path)
    for name, model in SHIPPED.items():  # converted once from a recorded GGUF: its sha256 says it all
        if path.resolve() == converted_dir(name).resolve() or path.name == model.gguf_name:
            return hashlib.sha256(f"{model.sha256}:{path.suffix or 'hf'}".encode()).hexdigest()[:12]
    memo_file = home() / "fingerprints.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    files = [path] if path.is_file() else sorted(
        {p for pattern in (*_FINGERPRINTED, *_WEIGHTS) for p in path.glob(pattern) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"{path} holds no model files (config.json, *.safetensors, ...)")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{_file_sha(f, memo)}\n".encode())
    try:  # best effort: a lost race only costs a re-hash later
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_file)
    except OSError:
        pass
    return h.hexdigest()[:12]


def local_lm(name_or_path: str | os.PathLike, *, backend: str = "transformers", dtype: str = "float32",
             device: str = "cpu", n_ctx: int = 8192, threads: int | None = None, gguf_type: str = GGUF_TYPE,
             **lm_kwargs):
    """A `dspy.LM` generating with a local model in this process.

    Args:
        name_or_path: a shipped model ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"), a local Hugging Face
            folder (or PEFT adapter folder), a hub id ("Qwen/Qwen2.5-0.5B-Instruct"), or with backend="llama.cpp"
            a shipped model, a .gguf file, or a fine-tuned folder descending from a shipped model (exported to GGUF
            once, agentdistill.lm.export).
        backend: "transformers" (trainable checkpoints, GPUs) or "llama.cpp" (fast CPU decoding, batched n-sample
            and concurrent requests).
        dtype, device: for the transformers backend. n_ctx: for the llama.cpp backend.
        threads: CPU threads per generation (default: 1 on a 2-core machine, see engine.default_threads).
        gguf_type: the GGUF type a fine-tuned folder is exported as for llama.cpp ("q8_0", "f16", "f32").
        **lm_kwargs: dspy.LM arguments: temperature (default 0.0), max_tokens (default 512), top_p, stop, cache...
            With backend="llama.cpp" also `tokenizer` (a folder with the chat template), `parallel`, `kv_tokens`
            (see LlamaCppEngine).
    """
    import dspy

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    lm_kwargs.setdefault("temperature", 0.0)
    lm_kwargs.setdefault("max_tokens", 512)
    text = os.fspath(name_or_path)
    if backend == "llama.cpp":
        engine_kwargs = {k: lm_kwargs.pop(k) for k in ("parallel", "kv_tokens") if k in lm_kwargs}
        tokenizer = lm_kwargs.pop("tokenizer", None)
        if text in SHIPPED:
            gguf, tokenizer, name = gguf_path(text), tokenizer or tokenizer_dir(text), text
            model = f"local/{name}@{fingerprint(gguf)}-llamacpp"
        elif text.endswith(".gguf") and Path(text).is_file():
            gguf, name = Path(text).resolve(), Path(text).stem
            tokenizer = tokenizer or _tokenizer_from_gguf(gguf)
            model = f"local/{name}@{fingerprint(gguf)}-llamacpp"
        elif Path(text).is_dir():  # a fine-tuned folder: its GGUF export (cached by content)
            from agentdistill.lm.export import export_gguf
            from agentdistill.lm.gguf_base import shipped_base

            folder = Path(text).resolve()
            gguf, name = export_gguf(folder, outtype=gguf_type), folder.name
            if tokenizer is None:
                tokenizer = folder if (folder / "tokenizer_config.json").is_file() else \
                    tokenizer_dir(shipped_base(folder))
            model = f"local/{name}@{fingerprint(folder)}-llamacpp-{gguf_type}"
            engine_kwargs["source"] = folder
        else:
            raise ValueError(f"backend='llama.cpp' takes a shipped model ({', '.join(SHIPPED)}), a .gguf file or a "
                             f"fine-tuned folder, got {text!r}; use backend='transformers' for hub ids")
        engine = LlamaCppEngine(gguf, tokenizer, n_ctx=n_ctx, n_threads=threads,
                                max_tokens=lm_kwargs["max_tokens"], **engine_kwargs)
    else:
        resolved = resolve_model_path(text)
        if isinstance(resolved, Path):
            name = text if text in SHIPPED else resolved.name
            model = f"local/{name}@{fingerprint(resolved)}"
        else:  # a hub id: transformers resolves (and caches) it; its revision is the hub's business
            model = f"local/{resolved}@hub"
        engine = TransformersEngine(resolved, dtype=dtype, device=device, max_tokens=lm_kwargs["max_tokens"],
                                    threads=threads)
    return dspy.LM(model, engine=engine, async_engine=AsyncEngine(engine), **lm_kwargs)


def _tokenizer_from_gguf(gguf: Path) -> Path:
    """A GGUF from elsewhere: save its tokenizer (with chat template) next to the converted models, once."""
    from agentdistill.lm.models import _atomic_dir, _lock, models_dir

    target = models_dir() / f"{gguf.stem}-{fingerprint(gguf)}.tokenizer"
    with _lock(target.name):
        if not target.is_dir():
            from transformers import AutoTokenizer

            _atomic_dir(target, lambda tmp: AutoTokenizer.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp))
    return target


def local_engine(lm):
    """The agentdistill engine behind a dspy.LM, or None (any other LM)."""
    engine = getattr(lm, "engine", None)
    return engine if isinstance(engine, (TransformersEngine, LlamaCppEngine)) else None


def sample(lm, messages, n: int = 1, temperature: float | None = None, top_p: float | None = None,
           max_tokens: int | None = None, stop=None, seed: int | None = None, continuation: dict | None = None,
           **call_kwargs) -> list[str]:
    """n completions of one chat. Unset arguments fall back to the LM's own defaults (lm.kwargs).

    On an agentdistill engine: ONE batched generate (transformers: num_return_sequences=n; llama.cpp: n sequences
    of one batch over the prompt's shared KV cells), uncached, recorded in `lm.history` as one entry and reported to DSPy's LM callbacks
    and usage tracker like any LM call. Any other dspy.LM (an OpenAI-compatible server, an API): n concurrent
    calls with distinct rollout_id (DSPy caches each one; temperature 0 makes a single call), each in a copy of
    the caller's context (dspy.context overrides, usage tracking, callbacks reach the threads).
    A last message with role "assistant" is continued; only the continuation is returned. On a server the call
    then carries `continuation` (None: the LM's own, agentdistill.lm.continuation_kwargs(lm), e.g. vLLM's
    continue_final_message from server_lm); the local engines continue by themselves. **call_kwargs go to the
    dspy.LM call of the server path and are refused on the local engines.
    """
    from agentdistill.lm.remote import add_continuation, continuation_kwargs

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    defaults = getattr(lm, "kwargs", {}) or {}
    temperature = defaults.get("temperature") if temperature is None else temperature
    top_p = defaults.get("top_p") if top_p is None else top_p
    max_tokens = (defaults.get("max_tokens") or defaults.get("max_completion_tokens")) if max_tokens is None \
        else max_tokens
    stop = defaults.get("stop") if stop is None else stop
    options = {k: v for k, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                                 "stop": stop, "seed": seed}.items() if v is not None}
    if local_engine(lm) is not None:
        if call_kwargs:
            raise TypeError(f"sample() on a local engine takes no extra call arguments, got {sorted(call_kwargs)}")
        from dspy.utils.callback import with_callbacks

        # with_callbacks takes its first argument as the instance: `lm` is a dspy.BaseLM, so DSPy's callbacks
        # get on_lm_start(inputs={"prompt", "messages", "kwargs"}) and on_lm_end(outputs=texts), as for lm(...)
        return with_callbacks(_generate)(lm, messages=messages, n=n, **options)

    options |= call_kwargs
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        # a partial assistant turn: the server must be told to continue it (vLLM's default is a new turn)
        options = add_continuation(options, continuation_kwargs(lm) if continuation is None else continuation, lm)
    from agentdistill.dspy_compat import adapter_message_call

    # our adapters rendered these messages: an adapter's own call, so DSPy does not warn once per sample
    if not temperature:
        with adapter_message_call(lm, messages):
            return [_text(lm(messages=messages, **options)[0])] * n

    def one(i: int) -> str:
        with adapter_message_call(lm, messages):
            return _text(lm(messages=messages, rollout_id=i, **options)[0])

    with ThreadPoolExecutor(max_workers=min(n, 8)) as pool:  # servers batch concurrent requests
        # a fresh copy of this thread's context per task (one context cannot be entered by two threads at once)
        futures = [pool.submit(contextvars.copy_context().run, one, i) for i in range(n)]
        return [f.result() for f in futures]


def _generate(self, prompt=None, *, messages=None, **kwargs) -> list[str]:
    """The local path of sample() as one LM call (`self` is the dspy.LM; the signature is dspy.LM.__call__'s, so
    callbacks see the same inputs): one batched generate, then usage and history as dspy's own calls record them."""
    import dspy

    completions = local_engine(self).generate(messages, **{**kwargs, "stop": kwargs.get("stop") or ()})
    texts = [c.text for c in completions]
    usage = _usage(completions)
    tracker = getattr(dspy.settings, "usage_tracker", None)
    if tracker is not None:
        tracker.add_usage(self.model, dict(usage))
    if not getattr(dspy.settings, "disable_history", False):
        from agentdistill.lm.engine import completion_to_response

        responses = tuple(completion_to_response(c, self.model) for c in completions)
        # the keys of dspy's own entries (dspy.clients.execution.finalize): inspect_history, MLflow and
        # optimizers read lm.history without knowing which engine answered
        self.update_history({
            "prompt": prompt, "messages": messages, "kwargs": dict(kwargs), "outputs": texts, "usage": usage,
            "response": responses[0] if len(responses) == 1 else responses, "cost": None,
            "timestamp": datetime.datetime.now().isoformat(), "uuid": str(uuid.uuid4()), "model": self.model,
            "response_model": self.model, "model_type": self.model_type,
        })
    return texts


def _text(output) -> str:
    return output["text"] if isinstance(output, dict) else output


def _usage(completions) -> dict:
    """One prompt (evaluated once for all n candidates), every candidate's completion tokens."""
    prompt = completions[0].prompt_tokens if completions else 0
    out = sum(c.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}
