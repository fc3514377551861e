"""TransformersEngine: a DSPy 3.4 engine (`complete(Request) -> Response`) over a transformers causal LM.

    import dspy
    from agentdistill.lm.engine import TransformersEngine
    engine = TransformersEngine("/path/to/hf_folder")
    lm = dspy.LM("local/my-model@abc123", engine=engine, temperature=0.0, max_tokens=256)
    lm(messages=[{"role": "user", "content": "2+3?"}])
    engine.generate(messages, n=8, temperature=0.7, stop=["\\nObservation:"])   # n candidates, ONE generate call

- The weights load lazily, on the first generation, into a process-wide table shared by every engine on the same
  checkpoint (copies, deepcopies and unpickled engines reuse them); generation holds that model's lock, because
  DSPy evaluates in threads and one CPU model gains nothing from concurrent generate calls. The table is keyed by the
  folder's content fingerprint (taken once per engine, at its first load), so a new engine on a folder that was
  trained again loads the new weights.
- Pickling (mlflow.dspy.log_model) and deepcopy carry only the spec (path, dtype, device), never weights.
- A trailing assistant message is continued (see agentdistill.lm.chat), stop strings cut exactly, usage reported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from agentdistill.lm.chat import Completion, cut_at_stop, render_prompt, request_to_messages

_LOADED: dict[tuple, "_Loaded"] = {}  # weights_key() -> weights shared by all engines in this process
_LOAD_LOCK = threading.Lock()


@dataclass
class _Loaded:
    model: object
    tokenizer: object
    lock: threading.Lock
    eos_ids: frozenset[int]
    pad_id: int


def weights_key(path: str, dtype: str, device: str) -> tuple:
    """The table key of a checkpoint: a local folder by its content (not its name), a hub id by the id."""
    if Path(path).exists():
        from agentdistill.lm.local import fingerprint  # local.py imports this module: import at call time

        return ("sha", fingerprint(path), dtype, device)
    return ("hub", path, dtype, device)


def _load(path: str, dtype: str, device: str, key: tuple | None = None) -> _Loaded:
    key = key or weights_key(path, dtype, device)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = getattr(torch, dtype)
        folder = Path(path)
        if (folder / "adapter_config.json").is_file():  # a PEFT adapter (e.g. LoRA from SFT): base + adapter, merged
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch_dtype).merge_and_unload()
            tokenizer_source = path if (folder / "tokenizer_config.json").is_file() else \
                model.config.name_or_path
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            tokenizer_source = path
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        model.to(device).eval()
        eos = set()
        for value in (tokenizer.eos_token_id, model.generation_config.eos_token_id):
            eos.update(value if isinstance(value, (list, tuple)) else [value] if value is not None else [])
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")  # ChatML end of turn, when the vocabulary has it
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            eos.add(im_end)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
        loaded = _Loaded(model, tokenizer, threading.Lock(), frozenset(eos), pad)
        _LOADED[key] = loaded
        return loaded


def default_threads() -> int:
    """CPU threads per generation: $AGENTDISTILL_THREADS, else 1 on <= 2 cores, else half the cores.

    Measured on a shared 2-core machine: with other busy processes, multi-threaded kernels spin-wait on descheduled
    threads and one thread is 3-10x faster (llama.cpp 13 vs 1-2 tokens/s); see the README's engine notes.
    """
    value = os.environ.get("AGENTDISTILL_THREADS")
    if value:
        return max(1, int(value))
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else cores // 2


def unload_all() -> None:
    """Forget every loaded model (frees memory once no engine call holds one)."""
    with _LOAD_LOCK:
        _LOADED.clear()


class SpecState:
    """Copies, pickles and saved programs carry an engine's `spec()` only: the weights stay in the process-wide
    table of loaded models (never copied, never pickled), so `mlflow.dspy.log_model` and deepcopy stay cheap."""

    def spec(self) -> dict:
        raise NotImplementedError

    def __getstate__(self):
        return self.spec()

    def __setstate__(self, state):
        self.__init__(**state)

    def __deepcopy__(self, memo):
        return type(self)(**self.spec())

    # dspy.LM.dump_state/load_state (program.save) record custom engines through these two.
    def dump_state(self) -> dict:
        return self.spec()

    @classmethod
    def load_state(cls, state: dict):
        return cls(**state)


class TransformersEngine(SpecState):
    """DSPy engine running a transformers chat model in this process.

    Args:
        path: a Hugging Face model folder (or PEFT adapter folder), or a hub id (resolved by transformers).
        dtype: torch dtype name for the weights ("float32" on CPU).
        device: torch device ("cpu", "cuda", ...).
        max_tokens: default max new tokens when a request does not say.
        threads: torch CPU threads during generation (None: default_threads()); restored afterwards.
    """

    def __init__(self, path: str | Path, *, dtype: str = "float32", device: str = "cpu", max_tokens: int = 512,
                 threads: int | None = None):
        self.path, self.dtype, self.device, self.max_tokens = str(path), dtype, device, int(max_tokens)
        self.threads = threads
        self._key = None  # weights_key() of the weights this engine loaded (taken at its first load)

    # -- weights ---------------------------------------------------------------------------------------------
    def load(self) -> _Loaded:
        if self._key is None or self._key not in _LOADED:  # first load, or unloaded since: maybe new weights
            self._key = weights_key(self.path, self.dtype, self.device)
        return _load(self.path, self.dtype, self.device, self._key)

    @property
    def is_loaded(self) -> bool:
        return (self._key or weights_key(self.path, self.dtype, self.device)) in _LOADED

    @property
    def tokenizer(self):
        return self.load().tokenizer

    def spec(self) -> dict:
        return {"path": self.path, "dtype": self.dtype, "device": self.device, "max_tokens": self.max_tokens,
                "threads": self.threads}

    def __repr__(self) -> str:
        return f"TransformersEngine({self.path!r}, dtype={self.dtype!r}, device={self.device!r})"


    # -- generation ------------------------------------------------------------------------------------------
    def generate(self, messages, *, n: int = 1, temperature: float | None = 0.0, top_p: float | None = None,
                 top_k: int | None = None, max_tokens: int | None = None, stop=(), seed: int | None = None,
                 continue_final_message: bool | None = None) -> list[Completion]:
        """n completions of one chat, sampled in ONE batched `generate` (the n rows share the prompt's KV cache)."""
        import torch
        from transformers import GenerationConfig

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        stop = (stop,) if isinstance(stop, str) else tuple(s for s in (stop or ()) if s)
        loaded = self.load()
        tokenizer, model = loaded.tokenizer, loaded.model
        prompt = render_prompt(tokenizer, messages, continue_final_message)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)  # template has BOS
        prompt_len = inputs["input_ids"].shape[1]
        window = getattr(model.config, "max_position_embeddings", None)
        if window and prompt_len >= window:
            raise ValueError(f"prompt of {prompt_len} tokens does not fit the model's {window}-token window; "
                             "shorten the chat (fewer steps, shorter observations)")
        sampling = bool(temperature) and temperature > 0
        rows = n if sampling else 1  # greedy: n identical candidates from one row
        config = GenerationConfig(
            max_new_tokens=int(max_tokens or self.max_tokens), do_sample=sampling, num_return_sequences=rows,
            temperature=temperature if sampling else None, top_p=top_p if sampling and top_p is not None else None,
            top_k=(top_k or 0) if sampling else None,  # OpenAI semantics: no top-k unless asked (HF defaults to 50)
            pad_token_id=loaded.pad_id, eos_token_id=sorted(loaded.eos_ids),
            bos_token_id=tokenizer.bos_token_id,
            # transformers' own stop strings (rows stop independently); the text is cut at the stop in _decode.
            # Same tokens as the hand-written criterion it replaced: scripts/compare_stop_strings.py
            stop_strings=list(stop) or None,
        )
        with loaded.lock, torch.inference_mode():
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads or default_threads())
            try:
                if seed is not None:
                    torch.manual_seed(seed)
                if rows > 1 and prompt_len > 1:
                    output = self._generate_shared_prefix(model, inputs, rows, config, tokenizer)
                else:
                    output = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
            finally:
                torch.set_num_threads(previous)
        completions = [self._decode(loaded, row[prompt_len:].tolist(), stop, prompt_len) for row in output]
        return completions * n if rows == 1 and n > 1 else completions

    @staticmethod
    def _generate_shared_prefix(model, inputs, rows: int, config, tokenizer):
        """n samples of one prompt, with the prompt's KV cache computed once and repeated n times.

        `num_return_sequences=n` would run the prompt through the model n times; for agent prompts (hundreds of
        tokens) that prefill dominates (measured: 523-token prompt, n=8, 16 new tokens: 32 s -> 8.4 s).
        """
        import copy

        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        model(input_ids=inputs["input_ids"][:, :-1], cache=cache, use_cache=True)  # all but the last prompt token
        cache.batch_repeat_interleave(rows)  # [1, ...] -> [rows, ...] per layer
        config = copy.copy(config)
        config.num_return_sequences = 1  # the rows are already there
        return model.generate(input_ids=inputs["input_ids"].repeat(rows, 1),
                              attention_mask=inputs["attention_mask"].repeat(rows, 1), cache=cache,
                              generation_config=config, tokenizer=tokenizer)

    @staticmethod
    def _decode(loaded: _Loaded, ids: list[int], stop, prompt_len: int) -> Completion:
        ended = next((i for i, t in enumerate(ids) if t in loaded.eos_ids), None)
        kept = ids if ended is None else ids[:ended]
        count = sum(1 for t in kept if t != loaded.pad_id) + (ended is not None)  # rows stopped early get padding
        text, hit = cut_at_stop(loaded.tokenizer.decode(kept, skip_special_tokens=True), stop)
        return Completion(text, "stop" if hit or ended is not None else "length", prompt_len, count)

    def complete(self, request):
        """DSPy engine contract: one canonical Request -> one Response (DSPy calls this n times for n>1)."""
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        config = request.config
        extensions = dict(config.extensions or {})
        [completion] = self.generate(
            request_to_messages(request), n=1, temperature=config.temperature, top_p=config.top_p,
            top_k=config.top_k, max_tokens=config.max_tokens, stop=config.stop, seed=config.seed,
            continue_final_message=extensions.get("continue_final_message"),
        )
        return completion_to_response(completion, request.model)

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        """DSPy borrows custom engines; the weights stay loaded for the other engines sharing them."""


def completion_to_response(completion: Completion, model: str):
    from dspy.lm15 import Message, Response, TextPart, Usage

    return Response(
        id=None, model=model, message=Message.assistant([TextPart(completion.text)]),
        finish_reason=completion.finish_reason,
        usage=Usage(input_tokens=completion.prompt_tokens, output_tokens=completion.completion_tokens),
    )


class AsyncEngine:
    """The async counterpart DSPy wants for `acall`: runs the sync engine in a worker thread."""

    def __init__(self, sync):
        self.sync = sync

    async def complete(self, request):
        import asyncio

        return await asyncio.to_thread(self.sync.complete, request)

    async def stream(self, request):
        for event in self.sync.stream(request):
            yield event

    async def aclose(self) -> None:
        pass

    def dump_state(self) -> dict:
        return {"class": f"{type(self.sync).__module__}:{type(self.sync).__qualname__}", "state": self.sync.dump_state()}

    @classmethod
    def load_state(cls, state: dict) -> "AsyncEngine":
        import pkgutil

        # "module:QualName", as dump_state writes it (DSPy's own engine records use the same form); DSPy has asked
        # for allow_custom_lm_class before a saved custom engine gets here
        return cls(pkgutil.resolve_name(state["class"]).load_state(state["state"]))
