"""LlamaCppEngine: the same DSPy engine contract over llama-cpp-python, running a GGUF file directly.

    from agentdistill.lm import local_lm
    teacher = local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")   # ~10x the tokens/s of fp32 transformers

On CPU this is the fast path for a teacher (quantized weights, llama.cpp kernels). The prompt is rendered by the
model's Hugging Face chat template (agentdistill.lm.chat), exactly as the transformers engine renders it, then
tokenized by llama.cpp and completed with the raw completion API, so continuation of a partial assistant message and
stop strings behave identically. n candidates are n completions of the same token prefix: llama-cpp-python keeps
the prompt's KV cache between calls, so the prompt is evaluated once.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path

from agentdistill.lm.chat import Completion, cut_at_stop, render_prompt, request_to_messages
from agentdistill.lm.engine import SpecState, completion_to_response, default_threads

_LOADED: dict[tuple, "_Loaded"] = {}
_LOAD_LOCK = threading.Lock()


@dataclass
class _Loaded:
    llama: object
    tokenizer: object
    lock: threading.Lock


class LlamaCppEngine(SpecState):
    """DSPy engine over `llama_cpp.Llama`.

    Args:
        gguf: path of the GGUF file.
        tokenizer: a Hugging Face folder whose tokenizer carries the chat template (see models.tokenizer_dir).
        n_ctx: context window in tokens (8192: SmolLM2's training window; Qwen2.5 allows 32768).
        n_threads: CPU threads (None: agentdistill.lm.engine.default_threads(), 1 on a 2-core machine).
        max_tokens: default max new tokens when a request does not say.
    """

    def __init__(self, gguf: str | Path, tokenizer: str | Path, *, n_ctx: int = 8192, n_threads: int | None = None,
                 max_tokens: int = 512):
        self.gguf, self.tokenizer_path = str(gguf), str(tokenizer)
        self.n_ctx, self.n_threads, self.max_tokens = int(n_ctx), n_threads, int(max_tokens)

    def spec(self) -> dict:
        return {"gguf": self.gguf, "tokenizer": self.tokenizer_path, "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "max_tokens": self.max_tokens}

    def __repr__(self) -> str:
        return f"LlamaCppEngine({self.gguf!r})"

    def load(self) -> _Loaded:
        key = (self.gguf, self.n_ctx, self.n_threads)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from llama_cpp import Llama
                from transformers import AutoTokenizer

                threads = self.n_threads or default_threads()
                llama = Llama(model_path=self.gguf, n_ctx=self.n_ctx, n_threads=threads, n_threads_batch=threads,
                              verbose=False)
                _LOADED[key] = _Loaded(llama, AutoTokenizer.from_pretrained(self.tokenizer_path), threading.Lock())
            return _LOADED[key]

    @property
    def tokenizer(self):
        return self.load().tokenizer

    def generate(self, messages, *, n: int = 1, temperature: float | None = 0.0, top_p: float | None = None,
                 top_k: int | None = None, max_tokens: int | None = None, stop=(), seed: int | None = None,
                 continue_final_message: bool | None = None) -> list[Completion]:
        """n completions of one chat (sequential; the prompt's KV cache is reused across them)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        stop = [stop] if isinstance(stop, str) else [s for s in (stop or ()) if s]
        loaded = self.load()
        prompt = render_prompt(loaded.tokenizer, messages, continue_final_message)
        sampling = bool(temperature) and temperature > 0
        out = []
        with loaded.lock:  # a Llama context is not thread-safe
            tokens = loaded.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) >= loaded.llama.n_ctx():
                raise ValueError(f"prompt of {len(tokens)} tokens does not fit n_ctx={loaded.llama.n_ctx()}; "
                                 "raise n_ctx (local_lm(..., n_ctx=...)) or shorten the chat")
            for i in range(n if sampling else 1):
                result = loaded.llama.create_completion(
                    prompt=tokens, max_tokens=int(max_tokens or self.max_tokens),
                    temperature=float(temperature) if sampling else 0.0,
                    top_p=1.0 if top_p is None else float(top_p), top_k=int(top_k or 0),  # 0: no top-k (OpenAI)
                    min_p=0.0, repeat_penalty=1.0, stop=stop,
                    seed=(seed + i) if seed is not None else random.randrange(2**31),
                )
                choice, usage = result["choices"][0], result["usage"]
                text, hit = cut_at_stop(choice["text"], stop)
                reason = "length" if choice.get("finish_reason") == "length" and not hit else "stop"
                out.append(Completion(text, reason, usage["prompt_tokens"], usage["completion_tokens"]))
        return out * n if not sampling and n > 1 else out

    def complete(self, request):
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        config = request.config
        [completion] = self.generate(
            request_to_messages(request), n=1, temperature=config.temperature, top_p=config.top_p,
            top_k=config.top_k, max_tokens=config.max_tokens, stop=config.stop, seed=config.seed,
            continue_final_message=dict(config.extensions or {}).get("continue_final_message"),
        )
        return completion_to_response(completion, request.model)

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass
