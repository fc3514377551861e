"""SFT throughput and padding: our trainer (TRL SFTTrainer + LoRA, agentdistill.optimizers.training) against a
plain PyTorch loop on the SAME batches, and the padding waste of each batching strategy.

    .venv/bin/python bench/bench_sft.py                 # SmolLM2-135M-Instruct, LoRA r=64, 48 agent chats
    .venv/bin/python bench/bench_sft.py --steps 8 --batch-size 4 --chats 64

Prints (goals from issue 6):
    tokens/s of the trainer vs the plain loop (ratio, goal >= 0.9): forward+backward+optimizer step, the first
        step of each excluded (warm-up), tokens = real (non-padding) tokens in the batches
    padding waste = padded positions / all positions, for random batches, length-grouped batches and packing
        (goal <= 10% with packing or length-grouping)
The chats are agent conversations rendered by the programs' renderer (system prompt with tools, task, 1-4 steps
of thought + code with observations), so their lengths are those of real SFT data.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agentdistill  # noqa: E402,F401  (offline settings first)


def make_chats(n: int, seed: int = 0) -> list[list[dict]]:
    from agentdistill.programs.rendering import render_chat, render_step, tool_specs
    import dspy

    questions = [
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "What is the smallest whole number $b$ such that 62 can be expressed in base $b$ using only three digits?",
        "If $x^2+bx+16$ has at least one real root, find all possible values of $b$.",
        "Compute $\\dbinom{16}{5}$.",
        "A rectangle has perimeter 56 and its length is three times its width. What is its area?",
    ]
    rng = random.Random(seed)
    tools = tool_specs([], dspy.Signature("question -> answer").output_fields)
    chats = []
    for i in range(n):
        q = rng.choice(questions)
        history = []
        for k in range(rng.randint(0, 3)):
            code = "\n".join(f"x{j} = {rng.randint(1, 99)} * {rng.randint(1, 99)}\nprint(x{j})"
                             for j in range(rng.randint(1, 6)))
            history.append({"text": render_step(f"Step {k + 1}: compute the partial values.", code),
                            "observation": "\n".join(str(rng.randint(1, 9999)) for _ in range(rng.randint(1, 6)))})
        chat = render_chat("Solve the math problem.", tools, {"question": q}, history)
        chat.append({"role": "assistant", "content": render_step("I have the answer.", "final_answer(42)")})
        chats.append(chat)
    return chats


def padding_waste(batches) -> float:
    real = total = 0
    for b in batches:
        ids = b["input_ids"]
        total += ids.numel()
        if "attention_mask" in b:
            real += int(b["attention_mask"].sum())
        else:  # padding-free (packing): the batch is one concatenated row of real tokens, no padding
            real += ids.numel()
    return 1.0 - real / total


def real_tokens(batch) -> int:
    return int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--chats", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="timed optimizer steps per contender (+1 warm-up)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=768)
    ap.add_argument("--padding-only", action="store_true", help="skip the throughput comparison")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from agentdistill.lm import resolve_model_path
    from agentdistill.optimizers.sft_data import build_dataset
    from agentdistill.optimizers.training import SFT, build_trainer

    torch.manual_seed(0)
    model_path = Path(args.model) if Path(args.model).exists() else resolve_model_path(args.model)
    tok = AutoTokenizer.from_pretrained(model_path)
    rows = build_dataset(make_chats(args.chats), tok, max_length=args.max_length)
    lengths = [len(r["input_ids"]) for r in rows]
    print(f"model {model_path.name}: {len(rows)} chats, tokens/chat min {min(lengths)} mean "
          f"{sum(lengths) / len(lengths):.0f} max {max(lengths)}; {torch.get_num_threads()} torch threads")

    # --- padding waste of each strategy (the trainer's own dataloader) ---------------------------------------
    waste = {}
    with tempfile.TemporaryDirectory() as d:
        for name, kw in {"random": dict(group_by_length=False), "group_by_length": dict(group_by_length=True),
                         "packing": dict(packing=True, group_by_length=False)}.items():
            sft = SFT(per_device_batch_size=args.batch_size, max_length=args.max_length, report_to="none",
                      lora_r=64, lora_alpha=128, **kw)
            tr = build_trainer(sft, model_path, rows, Path(d) / name)
            waste[name] = padding_waste(list(tr.get_train_dataloader()))
            print(f"padding waste, {name}: {waste[name]:.1%}", flush=True)
            del tr
        if args.padding_only:
            print(json.dumps({"padding_waste": {k: round(v, 4) for k, v in waste.items()}}))
            return 0

        # --- throughput, interleaved so both see the same machine load (2 shared cores): after each optimizer step
        # of the trainer, the plain PyTorch loop does one step on the very batch the trainer just used.
        from peft import LoraConfig, get_peft_model

        sft = SFT(per_device_batch_size=args.batch_size, max_length=args.max_length, report_to="none",
                  max_steps=args.steps + 1, group_by_length=True, save_steps=10_000, lr_scheduler_type="constant",
                  warmup_ratio=0.0, lora_dropout=0.0, logging_steps=10_000)
        trainer = build_trainer(sft, model_path, rows, Path(d) / "trainer")
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(r=sft.lora_r, lora_alpha=sft.lora_alpha, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=sft.learning_rate)
        seen_batches = []
        original_step = trainer.training_step

        def training_step(model_, inputs, *a, **k):  # records the batch; the trainer's own step runs unchanged
            seen_batches.append({k2: v.detach().clone() if hasattr(v, "detach") else v for k2, v in inputs.items()})
            return original_step(model_, inputs, *a, **k)

        trainer.training_step = training_step

        def loop_step(batch) -> float:
            t0 = time.perf_counter()
            out = model(**{k: v for k, v in batch.items() if k in {"input_ids", "attention_mask", "labels"}})
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the trainer clips too (max_grad_norm=1)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        class Interleave(TrainerCallback):
            trainer_s: list = []
            loop_s: list = []

            def on_step_begin(self, *a, **k):
                self.t0 = time.perf_counter()

            def on_step_end(self, *a, **k):
                self.trainer_s.append(time.perf_counter() - self.t0)
                self.loop_s.append(loop_step(seen_batches[-1]))

        cb = Interleave()
        trainer.add_callback(cb)
        trainer.train()
        tokens = [real_tokens(b) for b in seen_batches]
        # the first step of each is warm-up (allocations, first-touch); the rest are timed
        tok = sum(tokens[1:])
        t_trainer, t_loop = sum(cb.trainer_s[1:]), sum(cb.loop_s[1:])
        tok_trainer = tok_loop = tok
        per_step = [round(a_ / b_, 3) for a_, b_ in zip(cb.loop_s[1:], cb.trainer_s[1:])]

    tps_trainer, tps_loop = tok_trainer / t_trainer, tok_loop / t_loop
    result = {
        "timed_steps": len(cb.trainer_s) - 1,
        "per_step_ratio": per_step,
        "tokens_timed_trainer": tok_trainer,
        "tokens_timed_loop": tok_loop,
        "trainer_tokens_per_s": round(tps_trainer, 1),
        "plain_loop_tokens_per_s": round(tps_loop, 1),
        "ratio_trainer_vs_loop": round(tps_trainer / tps_loop, 3),
        "padding_waste": {k: round(v, 4) for k, v in waste.items()},
    }
    print(json.dumps(result, indent=1))
    print(f"trainer / plain loop tokens/s = {result['ratio_trainer_vs_loop']:.2f} (goal >= 0.9); padding waste "
          f"random {waste['random']:.1%}, length-grouped {waste['group_by_length']:.1%}, packed "
          f"{waste['packing']:.1%} (goal <= 10%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
