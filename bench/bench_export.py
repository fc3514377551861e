"""GGUF export of a fine-tuned student: agreement with transformers, llama.cpp decode speed, export time and size.

    .venv/bin/python bench/bench_export.py            # ~5 minutes on 2 shared cores -> results/gguf_export.json
    .venv/bin/python bench/bench_export.py --quick    # 4 prompts, 2 repeats: a smoke run -> /tmp/gguf_export.json

The student: SmolLM2-135M-Instruct (shipped Q4_1 GGUF, converted to float32) + a peft LoRA adapter that is not a
no-op: r=16, alpha=32 on q,k,v,o,gate,up,down, lora_B ~ N(0, 0.02^2) from a fixed seed (lora_A: peft's init under
the same seed). Routes, all through llama-cpp-python:

    merged-f32   export_gguf(adapter, outtype="f32")   the adapter merged (peft, float32), every weight f32
    merged-f16   export_gguf(adapter, outtype="f16")   2-D weights f16, norms f32
    merged-q8_0  export_gguf(adapter, outtype="q8_0")  f16 export quantized by llama.cpp's llama_model_quantize
    q4_1+lora    the shipped Q4_1 GGUF + export_lora_gguf(adapter), Llama(model_path=..., lora_path=...)

(a) greedy agreement with the transformers engine (TransformersEngine on the adapter folder: it merges the adapter,
    float32) over 20 fixed chats: the prompt token ids of the HF tokenizer go to both; the first 32 generated tokens
    (fewer when the reference ends its turn) must match token for token. Reported: prompts in full agreement, mean
    leading tokens in agreement, and at each divergence the reference's logit gap between its token and the route's
    (a gap near 0 is a near-tie, a large one an error).
(b) decode tokens/s: greedy, 64 new tokens of a story prompt, create_completion as LlamaCppEngine calls it, n_threads=1,
    the routes (with the transformers engine, for the ratio, and the Q4_1 base without the adapter, for the LoRA's
    cost) timed interleaved in rotating order, medians over repeats; the prompt's KV cache is reused after the
    warm-up call, so the time is decode.
(c) export seconds (fresh, into a temp folder, imports already warm), file size, llama.cpp load seconds.

The machine is shared: its load average is recorded at the start and the end.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentdistill  # noqa: E402,F401  (offline defaults)
from agentdistill.lm.agreement import AGREEMENT_PROMPTS as PROMPTS  # noqa: E402
from agentdistill.lm.agreement import agreement_chat as chat
from agentdistill.lm.agreement import llama_greedy  # noqa: E402
from agentdistill.lm.models import converted_dir, gguf_path  # noqa: E402

SMOL = "smollm2-135m-instruct"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA = {"r": 16, "lora_alpha": 32, "target_modules": TARGETS, "lora_B_std": 0.02, "seed": 0}
TOKENS = 32
SPEED_TOKENS = 64
SPEED_CHAT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and the sea."}]
def make_adapter(folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(LORA["seed"])
    base = AutoModelForCausalLM.from_pretrained(converted_dir(SMOL), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=LORA["r"], lora_alpha=LORA["lora_alpha"], target_modules=TARGETS,
                                            task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(LORA["seed"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * LORA["lora_B_std"])
    model.save_pretrained(folder)
    return folder


def git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class Reference:
    """The transformers engine on the adapter folder: prompt ids, greedy tokens, logit gaps."""

    def __init__(self, adapter: Path):
        import torch

        from agentdistill.lm.engine import TransformersEngine

        torch.set_num_threads(1)
        self.engine = TransformersEngine(adapter, threads=1, max_tokens=SPEED_TOKENS)
        self.loaded = self.engine.load()
        self.eos = self.loaded.eos_ids

    def ids(self, messages) -> list[int]:
        from agentdistill.lm.chat import render_prompt

        tok = self.loaded.tokenizer
        return tok(render_prompt(tok, messages), add_special_tokens=False)["input_ids"]

    def greedy(self, ids: list[int]) -> list[int]:
        import torch

        with torch.inference_mode():
            out = self.loaded.model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=TOKENS, do_sample=False, eos_token_id=sorted(self.eos), pad_token_id=self.loaded.pad_id)
        return out[0, len(ids):].tolist()

    def gap(self, ids, expected, n, other) -> float:
        import torch

        with torch.inference_mode():
            logits = self.loaded.model(torch.tensor([ids + expected[:n]])).logits[0, -1]
        return float(logits[expected[n]] - logits[other])


def cpp_greedy(llama, ids, eos):
    return llama_greedy(llama, ids, eos, TOKENS)


def agreement(llama, ref: Reference, cases) -> dict:
    full, leading, divergences = 0, [], []
    for i, (ids, expected) in enumerate(cases):
        got = cpp_greedy(llama, ids, ref.eos)
        n = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        leading.append(n)
        if got == expected:
            full += 1
        elif n < len(got) and n < len(expected):
            divergences.append({"prompt": i, "at": n, "logit_gap": round(ref.gap(ids, expected, n, got[n]), 4)})
        else:
            divergences.append({"prompt": i, "at": n, "logit_gap": None})  # one ended its turn, the other did not
    return {"prompts_in_full_agreement": full, "n": len(cases), "mean_leading_tokens": statistics.mean(leading),
            "leading_tokens": leading, "divergences": divergences}


def speed(llamas: dict, ref: Reference, repeats: int) -> dict:
    """Decode tokens/s per route (and for the transformers engine), interleaved in rotating order; medians."""
    prompt_ids = ref.ids(SPEED_CHAT)

    def cpp(llama):
        def run():
            result = llama.create_completion(prompt=prompt_ids, max_tokens=SPEED_TOKENS, temperature=0.0, top_p=1.0,
                                             top_k=0, min_p=0.0, repeat_penalty=1.0, seed=0)
            return result["usage"]["completion_tokens"]
        return run

    def transformers():
        return ref.engine.generate(SPEED_CHAT, max_tokens=SPEED_TOKENS)[0].completion_tokens

    runners = {name: cpp(llama) for name, llama in llamas.items()} | {"transformers-f32": transformers}
    for run in runners.values():
        run()  # warm-up: loads caches, evaluates the prompt once
    rates = {name: [] for name in runners}
    tokens = {name: [] for name in runners}
    names = list(runners)
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            start = time.perf_counter()
            n = runners[name]()
            rates[name].append(n / (time.perf_counter() - start))
            tokens[name].append(n)
    base = statistics.median(rates["transformers-f32"])
    return {name: {"median_tokens_per_s": round(statistics.median(r), 2), "tokens_per_s": [round(x, 2) for x in r],
                   "completion_tokens": tokens[name], "x_transformers": round(statistics.median(r) / base, 2)}
            for name, r in rates.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 prompts, 2 repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="speed repeats per route (default 7)")
    parser.add_argument("--out", default=None, help="JSON output (default results/gguf_export.json)")
    args = parser.parse_args(argv)
    prompts = PROMPTS[:4] if args.quick else PROMPTS
    repeats = args.repeats or (2 if args.quick else 7)
    out = Path(args.out or ("/tmp/gguf_export.json" if args.quick else
                            Path(__file__).resolve().parents[1] / "results" / "gguf_export.json"))
    started, load_start = time.time(), os.getloadavg()
    print(f"load average at start: {load_start}", flush=True)

    import llama_cpp
    import torch
    from llama_cpp import Llama

    from agentdistill.lm.export import export_gguf
    from agentdistill.lm.lora_export import export_lora_gguf

    results: dict = {"bench": "bench/bench_export.py", "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain")),
                     "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                 "load_average_start": load_start},
                     "versions": {"llama_cpp_python": llama_cpp.__version__, "torch": torch.__version__,
                                  "transformers": __import__("transformers").__version__,
                                  "peft": __import__("peft").__version__, "gguf": _version("gguf")},
                     "settings": {"student": SMOL, "base_gguf": gguf_path(SMOL).name, "lora": LORA,
                                  "agreement_tokens": TOKENS, "n_prompts": len(prompts), "speed_tokens": SPEED_TOKENS,
                                  "speed_repeats": repeats, "n_threads": 1, "n_ctx": 2048,
                                  "kv_cache": "llama.cpp default (f16), as LlamaCppEngine uses it"}}

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        adapter = make_adapter(tmp / "adapter")
        ref = Reference(adapter)  # also warms the imports (torch, transformers, peft) before the export timings
        cases = []
        t0 = time.perf_counter()
        for p in prompts:
            ids = ref.ids(chat(p))
            cases.append((ids, ref.greedy(ids)))
        results["reference"] = {"engine": "TransformersEngine(adapter folder), float32, merged by peft",
                                "seconds_for_all_prompts": round(time.perf_counter() - t0, 1),
                                "mean_generated_tokens": statistics.mean(len(e) for _, e in cases)}
        print(f"reference: {results['reference']}", flush=True)

        files, export_s = {}, {}
        for outtype in ("f32", "f16", "q8_0"):
            start = time.perf_counter()
            files[f"merged-{outtype}"] = export_gguf(adapter, tmp / f"model-{outtype}.gguf", outtype=outtype)
            export_s[f"merged-{outtype}"] = time.perf_counter() - start
        start = time.perf_counter()
        lora = export_lora_gguf(adapter, tmp / "lora-f32.gguf")
        export_s["q4_1+lora"] = time.perf_counter() - start
        start = time.perf_counter()
        export_gguf(adapter, tmp / "model-f16.gguf", outtype="f16")
        reuse_s = time.perf_counter() - start
        print(f"exports: {export_s}, reuse of a current export: {reuse_s:.3f}s", flush=True)

        routes = {name: (path, None) for name, path in files.items()} | {"q4_1+lora": (gguf_path(SMOL), lora)}
        llamas, load_s = {}, {}
        for name, (model, lora_path) in routes.items():
            start = time.perf_counter()
            llamas[name] = Llama(model_path=str(model), lora_path=None if lora_path is None else str(lora_path),
                                 n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
            load_s[name] = time.perf_counter() - start

        tokenizer_same = sum(llamas["merged-f16"].tokenize(
            _render(ref, chat(p)).encode(), add_bos=False, special=True) == ids for p, (ids, _) in zip(prompts, cases))
        results["llama_cpp_tokenizer_matches_hf"] = {"prompts": tokenizer_same, "n": len(prompts)}

        routes_out = {}
        for name, llama in llamas.items():
            model, lora_path = routes[name]
            routes_out[name] = {
                "agreement": agreement(llama, ref, cases),
                "export_seconds": round(export_s[name], 2),
                "file_bytes": model.stat().st_size if lora_path is None else lora_path.stat().st_size,
                "load_seconds": round(load_s[name], 2),
            }
            if lora_path is not None:
                routes_out[name]["base_bytes"] = model.stat().st_size
                routes_out[name]["total_bytes"] = model.stat().st_size + lora_path.stat().st_size
            routes_out[name]["file_mib"] = round(routes_out[name]["file_bytes"] / 2**20, 1)
            a = routes_out[name]["agreement"]
            print(f"{name}: {a['prompts_in_full_agreement']}/{a['n']} prompts agree, mean leading "
                  f"{a['mean_leading_tokens']:.1f} tokens", flush=True)
        # the base alone, to show the adapter matters: how far the shipped Q4_1 follows the merged model
        plain = Llama(model_path=str(gguf_path(SMOL)), n_ctx=2048, n_threads=1, verbose=False)
        results["control_q4_1_without_lora"] = {"agreement": agreement(plain, ref, cases)}

        for name, s in speed({**llamas, "control-q4_1-without-lora": plain}, ref, repeats).items():
            if name == "control-q4_1-without-lora":
                results["control_q4_1_without_lora"]["speed"] = s
            else:
                routes_out.setdefault(name, {})["speed"] = s
            print(f"{name}: {s['median_tokens_per_s']} tok/s ({s['x_transformers']}x transformers)", flush=True)
        results["routes"] = routes_out
        results["reuse_seconds"] = round(reuse_s, 3)
        for llama in [*llamas.values(), plain]:
            llama.close()

    results["machine"]["load_average_end"] = os.getloadavg()
    results["wall_seconds"] = round(time.time() - started, 1)
    print(f"load average at end: {results['machine']['load_average_end']}; {results['wall_seconds']} s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _render(ref: Reference, messages) -> str:
    from agentdistill.lm.chat import render_prompt

    return render_prompt(ref.loaded.tokenizer, messages)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
