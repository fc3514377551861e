"""Local LM engine benchmark: engine overhead and batched sampling, ratios measured in the same run.

    .venv/bin/python bench/bench_engine.py                  # SmolLM2-135M (the student), ~5-10 minutes on 2 shared cores
    .venv/bin/python bench/bench_engine.py --teacher        # + Qwen2.5-Coder-0.5B: transformers fp32 vs llama.cpp

1. engine tokens/s vs raw `model.generate` (same prompt, greedy, same threads)     goal >= 0.95
2. n=8 samples in one batched generate vs 8 sequential calls (short and ~500-token prompt)   goal >= 3x faster
3. (--teacher) teacher tokens/s through transformers fp32 vs llama-cpp-python on the same prompt

Timings alternate A/B and report medians, because the machine is shared.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentdistill  # noqa: E402,F401  (offline defaults)
from agentdistill.lm import local_lm  # noqa: E402
from agentdistill.lm.engine import default_threads  # noqa: E402

CHAT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
# An agent-sized prompt (~500 tokens of instructions): where sharing the prompt's KV cache across samples pays.
AGENT_CHAT = [{"role": "system", "content": "You solve tasks by writing Python code in steps. " * 50}, *CHAT]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def engine_vs_raw(engine, tokens: int, repeats: int):
    import torch

    loaded = engine.load()
    tok, model = loaded.tokenizer, loaded.model
    ids = tok(tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True), return_tensors="pt",
              add_special_tokens=False)

    def raw():
        previous = torch.get_num_threads()
        torch.set_num_threads(engine.threads or default_threads())  # what the engine uses: a like-for-like run
        try:
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=tokens, do_sample=False, pad_token_id=loaded.pad_id)
        finally:
            torch.set_num_threads(previous)
        return out.shape[1] - ids["input_ids"].shape[1]

    def eng():
        return engine.generate(CHAT, max_tokens=tokens)[0].completion_tokens

    raw(), eng()  # warm-up
    raw_rates, eng_rates = [], []
    for _ in range(repeats):
        dt, n = timed(raw)
        raw_rates.append(n / dt)
        dt, n = timed(eng)
        eng_rates.append(n / dt)
    return statistics.median(raw_rates), statistics.median(eng_rates)


def engine_own_work_ms(engine) -> float:
    """What the engine adds around model.generate: chat rendering, tokenizing, decoding (deterministic, no model)."""
    from agentdistill.lm.chat import render_prompt

    loaded = engine.load()
    tok = loaded.tokenizer
    ids = tok("A lighthouse keeper watched the sea " * 8, add_special_tokens=False)["input_ids"]
    start = time.perf_counter()
    for _ in range(100):
        tok(render_prompt(tok, CHAT), return_tensors="pt", add_special_tokens=False)
        engine._decode(loaded, ids, ("\nObservation:",), 0)
    return (time.perf_counter() - start) * 10  # ms per call


def batched_vs_sequential(engine, n: int, tokens: int, repeats: int, chat=CHAT):
    def batched():
        return engine.generate(chat, n=n, temperature=0.7, max_tokens=tokens)

    def sequential():
        return [engine.generate(chat, n=1, temperature=0.7, max_tokens=tokens)[0] for _ in range(n)]

    batched()
    seq_times, batch_times = [], []
    for _ in range(repeats):
        seq_times.append(timed(sequential)[0])
        batch_times.append(timed(batched)[0])
    return statistics.median(seq_times), statistics.median(batch_times)


def teacher(tokens: int):
    rows = []
    for backend in ("llama.cpp", "transformers"):
        lm = local_lm("qwen2.5-coder-0.5b-instruct", backend=backend)
        load, _ = timed(lm.engine.load)
        lm.engine.generate(CHAT, max_tokens=4)  # warm-up
        dt, [c] = timed(lambda: lm.engine.generate(CHAT, max_tokens=tokens))
        rows.append((backend, load, c.completion_tokens / dt))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--teacher", action="store_true", help="also compare the teacher on both backends")
    args = parser.parse_args()

    engine = local_lm(args.model).engine
    print(f"model {args.model}, threads {engine.threads or default_threads()}, {args.tokens} new tokens, "
          f"median of {args.repeats}")
    raw, eng = engine_vs_raw(engine, args.tokens, args.repeats)
    overhead_ratio = eng / raw
    print(f"1. raw model.generate {raw:6.2f} tok/s | engine {eng:6.2f} tok/s | ratio {overhead_ratio:.3f} "
          f"(goal >= 0.95: {'PASS' if overhead_ratio >= 0.95 else 'FAIL'})")
    own = engine_own_work_ms(engine)
    print(f"   engine's own work per call (render + tokenize + decode): {own:.2f} ms = "
          f"{own / 1000 * eng / args.tokens * 100:.3f}% of a {args.tokens}-token generation "
          "(the rest of any gap is machine noise)")
    for label, chat in (("short prompt", CHAT), ("agent prompt", AGENT_CHAT)):
        seq, batch = batched_vs_sequential(engine, args.n, args.tokens, args.repeats, chat)
        speedup = seq / batch
        print(f"2. {label}: {args.n} sequential calls {seq:6.2f} s | one batched generate n={args.n} {batch:6.2f} s"
              f" | speed-up {speedup:.2f}x (goal >= 3x: {'PASS' if speedup >= 3 else 'FAIL'})")
    if args.teacher:
        rows = teacher(args.tokens * 2)
        for backend, load, rate in rows:
            print(f"3. teacher qwen2.5-coder-0.5b-instruct via {backend:12s} load {load:5.1f} s, {rate:6.2f} tok/s")
        print(f"   llama.cpp / transformers speed ratio: {rows[0][2] / rows[1][2]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
