"""transformers' `generate(stop_strings=...)` against the hand-written stopping criterion it replaced in
agentdistill.lm.engine: the same tokens, greedy and sampled, on the shipped SmolLM2-135M.

    .venv/bin/python scripts/compare_stop_strings.py [--json results/stop_strings.json]     # ~10 min on 2 cores

The old criterion is kept here (and only here) so the comparison stays reproducible.
"""

import argparse
import json
import os
import subprocess
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

from agentdistill.lm import resolve_model_path


class HandWrittenStop:
    """The replaced criterion: True once a row's newest tokens contain a stop string (rows stop independently)."""

    def __init__(self, tokenizer, stops, prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, tuple(stops), prompt_len
        self.window = max(len(s) for s in self.stops) + 4

    def __call__(self, input_ids, scores, **kwargs):
        start = max(self.prompt_len, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in tails], dtype=torch.bool,
                            device=input_ids.device)


PROMPTS = ["Write a python function that adds two numbers, then explain it.", "List three fruits, one per line.",
           "Thought: I will compute 2+3.\n```python\nprint(2+3)\n```\nObservation:", "Say hello twice.\n\nThen stop.",
           "Count from 1 to 20 separated by commas.", "What is the capital of France? Answer in one word."]
STOPS = [("\n\n",), ("```\n",), ("Observation:",), (",",), ("\n",), ("Answer:", "\n\n")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    path = resolve_model_path("smollm2-135m-instruct")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    torch.set_num_threads(2)
    load_start, cases, greedy_same, stopped, sampled_same = os.getloadavg(), 0, 0, 0, 0
    for prompt in PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        n = ids["input_ids"].shape[1]
        for stops in STOPS:
            old = StoppingCriteriaList([HandWrittenStop(tok, stops, n)])
            with torch.inference_mode():
                a = model.generate(**ids, max_new_tokens=60, do_sample=False, stopping_criteria=old)
                b = model.generate(**ids, max_new_tokens=60, do_sample=False, stop_strings=list(stops), tokenizer=tok)
                torch.manual_seed(0)
                sa = model.generate(**ids, max_new_tokens=40, do_sample=True, temperature=0.9,
                                    num_return_sequences=3, stopping_criteria=old)
                torch.manual_seed(0)
                sb = model.generate(**ids, max_new_tokens=40, do_sample=True, temperature=0.9,
                                    num_return_sequences=3, stop_strings=list(stops), tokenizer=tok)
            cases += 1
            greedy_same += a.tolist() == b.tolist()
            stopped += a.shape[1] - n < 60
            sampled_same += sa.tolist() == sb.tolist()
    out = {"name": "stop_strings", "model": "smollm2-135m-instruct", "cases": cases,
           "greedy_identical": greedy_same, "greedy_stopped_by_a_stop_string": stopped,
           "sampled_batches_identical": sampled_same, "rows_per_sampled_batch": 3,
           "machine": {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": load_start,
                       "load_average_end": os.getloadavg(), "cpu_count": os.cpu_count(),
                       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                                text=True).stdout.strip()}}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
