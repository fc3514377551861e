"""LlamaCppEngine: the DSPy engine contract over llama.cpp, with every request decoded in one shared batch.

    from agentdistill.lm import local_lm
    teacher = local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")
    student = local_lm("runs/sft/checkpoint", backend="llama.cpp")     # a trained folder: exported to GGUF once
    engine = teacher.engine
    engine.generate(messages, n=8, temperature=0.7, stop=["\\nObservation:"])   # 8 sequences of one batch

The prompt is rendered by the model's Hugging Face chat template (agentdistill.lm.chat), exactly as the transformers
engine renders it, and tokenized by llama.cpp, so continuation of a partial assistant message and stop strings
behave identically on both engines.

Why a decode loop of our own (llama-cpp-python's `Llama` decodes one sequence per call behind one lock): one
thread per loaded model owns the llama.cpp context and decodes, per step, one token of every running sequence plus
a chunk of any waiting prompt, in one `llama_decode` batch (continuous batching, as llama-server and vLLM do).
- n candidates of one prompt evaluate the prompt once; the other n-1 sequences share its KV cells
  (`llama_memory_seq_cp` on a unified cache) and then decode side by side.
- Concurrent requests (DSPy threads, the HTTP server's threads) join the running batch instead of queueing.
- A finished sequence keeps its KV cells until the slot is needed: the next request that shares its prefix (an
  agent's next step starts with the previous step's prompt and answer) evaluates only the new tokens.
Sampling per sequence is llama.cpp's own sampler chain (top-k, top-p, temperature, seeded draw; greedy at 0).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from agentdistill.lm.chat import Completion, cut_at_stop, render_prompt, request_to_messages
from agentdistill.lm.engine import SpecState, completion_to_response, default_threads

logger = logging.getLogger(__name__)

_LOADED: dict[tuple, "_Loaded"] = {}
_LOAD_LOCK = threading.Lock()


@dataclass
class _Loaded:
    decoder: "_Decoder"
    tokenizer: object


class LlamaCppEngine(SpecState):
    """DSPy engine over a GGUF file, decoding all requests of the process in shared batches.

    Args:
        gguf: path of the GGUF file.
        tokenizer: a Hugging Face folder whose tokenizer carries the chat template (see models.tokenizer_dir).
        n_ctx: the longest sequence (prompt + completion) in tokens (8192: SmolLM2's training window).
        n_threads: CPU threads (None: agentdistill.lm.engine.default_threads(), 1 on a 2-core machine).
        max_tokens: default max new tokens when a request does not say.
        parallel: sequences decoded side by side (SAG candidates and concurrent requests together).
        kv_tokens: KV cache cells shared by all sequences (None: 4 x n_ctx). Candidates of one prompt share the
            prompt's cells, so n=8 over a 2,000-token prompt needs 2,000 + 8 x completion cells, not 8 x 2,000.
        source: the Hugging Face folder the GGUF was exported from (a fine-tuned student: what training resumes
            from), or None.

    Example:
        >>> engine = LlamaCppEngine(gguf_path("smollm2-135m-instruct"), tokenizer_dir("smollm2-135m-instruct"))
        >>> [c.text for c in engine.generate([{"role": "user", "content": "2+3?"}], n=2, temperature=0.7)]
    """

    def __init__(self, gguf: str | Path, tokenizer: str | Path, *, n_ctx: int = 8192, n_threads: int | None = None,
                 max_tokens: int = 512, parallel: int = 16, kv_tokens: int | None = None,
                 source: str | Path | None = None):
        self.gguf, self.tokenizer_path = str(gguf), str(tokenizer)
        self.n_ctx, self.n_threads, self.max_tokens = int(n_ctx), n_threads, int(max_tokens)
        self.parallel, self.kv_tokens = int(parallel), kv_tokens
        self.source = str(source) if source is not None else None

    def spec(self) -> dict:
        return {"gguf": self.gguf, "tokenizer": self.tokenizer_path, "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "max_tokens": self.max_tokens, "parallel": self.parallel,
                "kv_tokens": self.kv_tokens, "source": self.source}

    def __repr__(self) -> str:
        return f"LlamaCppEngine({self.gguf!r})"

    def load(self) -> _Loaded:
        threads = self.n_threads or default_threads()
        kv = int(self.kv_tokens or 4 * self.n_ctx)
        key = (self.gguf, self.tokenizer_path, self.n_ctx, threads, self.parallel, kv)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from transformers import AutoTokenizer

                decoder = _Decoder(self.gguf, n_ctx=self.n_ctx, kv_tokens=kv, threads=threads,
                                   parallel=self.parallel)
                _LOADED[key] = _Loaded(decoder, AutoTokenizer.from_pretrained(self.tokenizer_path))
            return _LOADED[key]

    @property
    def tokenizer(self):
        return self.load().tokenizer

    def generate(self, messages, *, n: int = 1, temperature: float | None = 0.0, top_p: float | None = None,
                 top_k: int | None = None, max_tokens: int | None = None, stop=(), seed: int | None = None,
                 continue_final_message: bool | None = None) -> list[Completion]:
        """n completions of one chat, decoded as n sequences of the shared batch (thread-safe)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        stop = [stop] if isinstance(stop, str) else [s for s in (stop or ()) if s]
        loaded = self.load()
        prompt = render_prompt(loaded.tokenizer, messages, continue_final_message)
        sampling = bool(temperature) and temperature > 0
        completions = loaded.decoder.run(
            prompt, n=n if sampling else 1, max_tokens=int(max_tokens or self.max_tokens), stop=stop,
            temperature=float(temperature) if sampling else 0.0, top_p=1.0 if top_p is None else float(top_p),
            top_k=int(top_k or 0), seed=seed)
        return completions * n if not sampling and n > 1 else completions  # greedy: n identical candidates

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


# --- the decode loop ----------------------------------------------------------------------------------------------

@dataclass
class _Request:
    tokens: list[int]
    n: int
    max_tokens: int
    stop: list[str]
    sampling: dict
    seed: int | None
    future: Future
    done: list = field(default_factory=list)  # Completion or None per candidate
    prefilled: int = 0  # prompt tokens already in the primary slot's cells
    slots: list = field(default_factory=list)


@dataclass
class _Slot:
    seq: int
    fed: list[int] = field(default_factory=list)  # tokens whose KV cells this sequence holds, in position order
    request: _Request | None = None  # the request that holds it (None: free, its cells a cache for reuse)
    candidate: int = 0
    sampler: object = None
    pending: int | None = None  # sampled, not yet decoded
    out: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    used: float = 0.0


class _Decoder:
    """One llama.cpp model and context, owned by one thread that decodes every request in shared batches."""

    def __init__(self, gguf: str, *, n_ctx: int, kv_tokens: int, threads: int, parallel: int, n_batch: int = 512):
        import llama_cpp as C

        self.C, self.n_ctx, self.n_batch = C, n_ctx, n_batch
        if logging.getLogger("llama-cpp-python").level == logging.NOTSET:
            # llama-cpp-python's C log callback maps ggml's levels as they were numbered before (WARN reaches it as
            # ERROR), so ERROR still prints warnings such as "n_ctx_seq > n_ctx_train", which a unified cache of
            # several sequences always triggers; failures reach us as return codes anyway
            logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
        C.llama_backend_init()
        mparams = C.llama_model_default_params()
        self.model = C.llama_model_load_from_file(gguf.encode(), mparams)
        if not self.model:
            raise ValueError(f"llama.cpp could not load {gguf!r}: not a GGUF model file it can run")
        cparams = C.llama_context_default_params()
        cparams.n_ctx = max(kv_tokens, n_ctx)
        cparams.n_batch = cparams.n_ubatch = n_batch
        cparams.n_seq_max = parallel
        cparams.kv_unified = True  # one pool of cells: candidates share their prompt's cells
        cparams.n_threads = cparams.n_threads_batch = threads
        # flash attention: each query row's attention is computed alone, so a sequence decodes to the same
        # logits whatever else shares its batch (without it, batched and sequential sampling diverge)
        cparams.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.no_perf = True
        self.ctx = C.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {gguf!r} (n_ctx={cparams.n_ctx})")
        self.memory = C.llama_get_memory(self.ctx)
        self.vocab = C.llama_model_get_vocab(self.model)
        self.batch = C.llama_batch_init(n_batch, 0, 1)
        self.slots = [_Slot(seq) for seq in range(parallel)]
        self.inbox: queue.Queue[_Request] = queue.Queue()
        self.waiting: list[_Request] = []
        self.prefilling: list[_Request] = []
        self.steps = 0  # llama_decode calls
        self.max_batch = 0  # most sequences decoded side by side in one step
        self.prompt_tokens_evaluated = 0  # prompt tokens run through the model (the rest came from cached cells)
        self.thread = threading.Thread(target=self._loop, name="agentdistill-llama-decoder", daemon=True)
        self.thread.start()

    # -- the public side (any thread) --

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 16
        buf = (self.C.llama_token * size)()
        n = self.C.llama_tokenize(self.vocab, data, len(data), buf, size, False, True)
        if n < 0:  # cannot happen with one token per byte or fewer, but be exact
            buf = (self.C.llama_token * -n)()
            n = self.C.llama_tokenize(self.vocab, data, len(data), buf, -n, False, True)
        return list(buf[:n])

    def run(self, prompt: str, *, n: int, max_tokens: int, stop: list[str], temperature: float, top_p: float,
            top_k: int, seed: int | None) -> list[Completion]:
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}; "
                             "raise n_ctx (local_lm(..., n_ctx=...)) or shorten the chat")
        if not self.thread.is_alive():
            raise RuntimeError("the llama.cpp decode thread has stopped; start a new process")
        sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
        futures = []
        for start in range(0, n, len(self.slots)):  # more candidates than slots: in rounds
            size = min(len(self.slots), n - start)
            future: Future = Future()
            base = None if seed is None else seed + start
            self.inbox.put(_Request(tokens, size, max(1, min(max_tokens, self.n_ctx - len(tokens))), stop,
                                    sampling, base, future))
            futures.append(future)
        return [c for f in futures for c in f.result()]

    # -- the decode thread --

    def _loop(self) -> None:
        while True:
            busy = self.prefilling or any(s.request for s in self.slots)
            try:
                item = self.inbox.get(block=not busy and not self.waiting, timeout=None)
                self.waiting.append(item)
                while True:
                    self.waiting.append(self.inbox.get_nowait())
            except queue.Empty:
                pass
            try:
                self._admit()
                if self.prefilling or any(s.request for s in self.slots):
                    self._step()
            except Exception as exc:  # a broken step fails the requests in it, never the thread
                logger.exception("llama.cpp decode step failed")
                self._fail_all(exc)

    def _admit(self) -> None:
        """Give waiting requests free slots (first come, first served); the longest cached prefix is reused."""
        while self.waiting:
            request = self.waiting[0]
            free = [s for s in self.slots if s.request is None]
            if len(free) < request.n:
                return
            self.waiting.pop(0)
            donor = max(free, key=lambda s: (_common_prefix(s.fed, request.tokens), -s.used))
            keep = min(_common_prefix(donor.fed, request.tokens), len(request.tokens) - 1)
            if keep == len(donor.fed) or not any(not s.fed for s in free):
                primary = donor  # its cells are all a prefix of this prompt: extend them (nothing is lost)
            else:
                # the donor's cells hold more than the shared prefix (another agent's history, idle while its
                # code runs): share the prefix cells with an empty slot instead of cutting the donor's cache
                primary = next(s for s in free if not s.fed)
                self.C.llama_memory_seq_cp(self.memory, donor.seq, primary.seq, 0, keep)
                primary.fed = list(donor.fed[:keep])
            if not self.C.llama_memory_seq_rm(self.memory, primary.seq, keep, -1):
                keep = 0
                self.C.llama_memory_seq_rm(self.memory, primary.seq, -1, -1)
            del primary.fed[keep:]
            others = sorted((s for s in free if s is not primary), key=lambda s: (len(s.fed) > 0, s.used))
            request.slots = [primary, *others[:request.n - 1]]
            for i, slot in enumerate(request.slots):
                slot.request, slot.candidate, slot.pending = request, i, None
                slot.out, slot.text = [], bytearray()
                if i:
                    self.C.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
                    slot.fed = []
            request.prefilled = keep
            request.done = [None] * request.n
            self.prefilling.append(request)

    def _step(self) -> None:
        C, batch = self.C, self.batch
        entries: list[tuple[_Slot, int]] = []  # (slot, token) in batch order
        logits_at: dict[int, object] = {}  # batch index -> the slot (decode) or request (end of its prompt)
        for slot in self.slots:
            if slot.request is not None and slot.pending is not None:
                logits_at[len(entries)] = slot
                entries.append((slot, slot.pending))
        # one prompt per step: a ubatch holding prompt tokens of two sequences computes slightly different logits
        # than either alone, while decode tokens of other sequences beside one prompt change nothing (tested), so
        # a request's result never depends on what else runs
        if self.prefilling and len(entries) < self.n_batch:
            request = self.prefilling[0]
            chunk = request.tokens[request.prefilled:request.prefilled + self.n_batch - len(entries)]
            entries.extend((request.slots[0], token) for token in chunk)
            request.prefilled += len(chunk)
            self.prompt_tokens_evaluated += len(chunk)
            if request.prefilled == len(request.tokens):
                logits_at[len(entries) - 1] = request
        positions: dict[int, int] = {}
        for i, (slot, token) in enumerate(entries):
            pos = positions.get(slot.seq, len(slot.fed))
            positions[slot.seq] = pos + 1
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0] = slot.seq
            batch.logits[i] = i in logits_at
        batch.n_tokens = len(entries)
        self._decode(entries)
        self.steps += 1
        self.max_batch = max(self.max_batch, sum(1 for v in logits_at.values() if isinstance(v, _Slot)))
        for slot, token in entries:
            slot.fed.append(token)
        now = time.monotonic()
        for index, owner in logits_at.items():
            if isinstance(owner, _Slot):
                owner.pending = None
                self._take(owner, C.llama_sampler_sample(owner.sampler, self.ctx, index), now)
            else:  # a prompt is in: its candidates share its cells and draw their first tokens from its logits
                request = owner
                self.prefilling.remove(request)
                primary = request.slots[0]
                for slot in request.slots:
                    if slot is not primary:
                        C.llama_memory_seq_cp(self.memory, primary.seq, slot.seq, -1, -1)
                        slot.fed = list(primary.fed)
                    slot.sampler = self._sampler(request, slot.candidate)
                for slot in request.slots:
                    self._take(slot, C.llama_sampler_sample(slot.sampler, self.ctx, index), now)

    def _decode(self, entries) -> None:
        while True:
            status = self.C.llama_decode(self.ctx, self.batch)
            if status == 0:
                return
            if status == 1:  # no room in the KV cache: drop the least recently used cached prefix and retry
                cached = [s for s in self.slots if s.request is None and s.fed]
                if cached:
                    victim = min(cached, key=lambda s: s.used)
                    self.C.llama_memory_seq_rm(self.memory, victim.seq, -1, -1)
                    victim.fed = []
                    continue
                raise RuntimeError("the KV cache is full with running sequences; raise kv_tokens "
                                   "(local_lm(..., kv_tokens=...)) or lower the number of parallel requests")
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _sampler(self, request: _Request, candidate: int):
        C, s = self.C, request.sampling
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        if s["temperature"] <= 0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
            return chain
        if s["top_k"] > 0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_k(s["top_k"]))
        if s["top_p"] < 1.0:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(s["top_p"], 1))
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(s["temperature"]))
        seed = random.randrange(2**31) if request.seed is None else request.seed + candidate
        C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(seed))
        return chain

    def _take(self, slot: _Slot, token: int, now: float) -> None:
        """One sampled token of a candidate: finish it (end of turn, stop string, length) or queue it."""
        request = slot.request
        if self.C.llama_vocab_is_eog(self.vocab, token):
            return self._finish(slot, "stop", now)
        slot.out.append(token)
        slot.text += self._piece(token)
        if request.stop:
            text = slot.text.decode("utf-8", "ignore")
            _, hit = cut_at_stop(text, request.stop)
            if hit:
                return self._finish(slot, "stop", now)
        if len(slot.out) >= request.max_tokens:
            return self._finish(slot, "length", now)
        slot.pending = token

    def _finish(self, slot: _Slot, reason: str, now: float) -> None:
        request = slot.request
        text, hit = cut_at_stop(slot.text.decode("utf-8", "ignore"), request.stop)
        reason = "stop" if hit else reason
        request.done[slot.candidate] = Completion(text, reason, len(request.tokens), len(slot.out))
        self.C.llama_sampler_free(slot.sampler)
        slot.request, slot.sampler, slot.pending, slot.used = None, None, None, now
        if all(c is not None for c in request.done):
            request.future.set_result(list(request.done))

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _fail_all(self, exc: Exception) -> None:
        """After a failed step the cells are in an unknown state: clear them and fail every running request."""
        self.C.llama_memory_clear(self.memory, True)
        failed = {id(s.request): s.request for s in self.slots if s.request is not None}
        failed.update({id(r): r for r in self.prefilling})
        for slot in self.slots:
            if slot.sampler is not None:
                self.C.llama_sampler_free(slot.sampler)
            slot.request, slot.sampler, slot.pending, slot.fed = None, None, None, []
        self.prefilling.clear()
        for request in failed.values():
            if not request.future.done():
                request.future.set_exception(exc)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
