"""Regenerate the README's result tables from the JSON files under results/ (no figure is typed by hand).

    .venv/bin/python scripts/readme_tables.py          # rewrite every block in README.md
    .venv/bin/python scripts/readme_tables.py --check  # exit 1 if README.md is out of date

A block is the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->`; NAME picks the renderer below
and the file results/NAME.json, or the file RESULTS_FILES names for it (several tables from one file).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from agentdistill.benchmarks.summary import row_rank

ROOT = Path(__file__).resolve().parents[1]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def first_thought_prefix(r: dict) -> str:
    rows = r["rows"]
    lines = ["| teacher run | solved / n | success % (95% CI) | kept | step-1 parse errors | out of steps | agent s (no CoT pass) |",
             "|---|---|---|---|---|---|---|"]
    for name, label in (("noprefix", "without prefix"), ("prefix", "with prefix")):
        row = rows[name]
        s = row["success"]
        lines.append(f"| {label} | {row['solved']} / {row['n']} | {_pct(s['rate'])} ({_pct(s['low'])}-{_pct(s['high'])})"
                     f" | {row['kept']} | {row['step1_parse_errors']} | {row['dropped_by'].get('out_of_steps', 0)}"
                     f" | {row['seconds']:.0f} |")
    d = r["paired_prefix_minus_noprefix"]
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    lines.append("")
    lines.append(f"Paired (same {d['n']} tasks), with minus without: {_pct(d['difference'])} points "
                 f"(95% CI {_pct(d['low'])} to {_pct(d['high'])}); solved only with the prefix {d['a_only']}, only "
                 f"without {d['b_only']}. Teacher {r['settings']['teacher']}, max {r['settings']['max_steps']} steps; "
                 f"commit {r['commit']}, load average at the end {load}; `results/first_thought_prefix.json`.")
    return "\n".join(lines)


def engine(r: dict) -> str:
    lines = ["| ratio | baseline | new | ratio | goal | load average | commit |", "|---|---|---|---|---|---|---|"]
    for key, row in sorted(r["ratios"].items()):
        unit = row["unit"]
        lines.append(f"| {key}. {row['label']} | {row['baseline_name']}: {row['baseline']:.2f} {unit} | "
                     f"{row['new_name']}: {row['new']:.2f} {unit} | **{row['ratio']:.2f}x** | >= {row['goal']:g} "
                     f"{'(met)' if row['pass'] else '(not met)'} | "
                     f"{', '.join(f'{x:.1f}' for x in row['load_average'])} | {row.get('commit', '')} |")
    s = r["settings"]
    lines.append("")
    lines.append(f"`bench/bench_engine.py` on this {r['cpu_count']}-core CPU, {r['threads']} thread(s) per model, "
                 f"student `{r['gguf']}`, {s['tokens']} new tokens, medians of {s['repeats']} interleaved runs; "
                 "`results/engine.json`.")
    ceiling = r["ratios"].get("3", {}).get("prompt_evaluation_tokens_per_s")
    if ceiling:
        base = r["ratios"]["3"]["baseline"]
        lines.append(f"Ceiling of any batch here: the same model evaluates a long prompt (all its tokens in one step) "
                     f"at {ceiling:.1f} tokens/s, {ceiling / base:.1f}x ratio 3's sequential rate: the most a batch of "
                     "decode steps could gain on this CPU.")
    acc = r["ratios"].get("5", {}).get("accuracy")
    if acc:
        lines.append("Evaluation accuracy on the same questions (a check that the engines agree, not a result): "
                     + ", ".join(f"{name} {value:.1f}%" for name, value in acc.items()) + ".")
    return "\n".join(lines)


def gguf_export(r: dict) -> str:
    s = r["settings"]
    lines = [f"| route | greedy agreement with transformers ({s['agreement_tokens']} tokens, n={s['n_prompts']} prompts) "
             "| mean agreeing leading tokens | tokens/s (x transformers) | file MiB | export s |",
             "|---|---|---|---|---|---|"]
    for name, row in r["routes"].items():
        speed = row["speed"]
        if "agreement" not in row:
            lines.append(f"| {name} (reference) | - | - | {speed['median_tokens_per_s']:.1f} (1.00) | - | - |")
            continue
        a = row["agreement"]
        lines.append(f"| {name} | {a['prompts_in_full_agreement']} / {a['n']} | {a['mean_leading_tokens']:.1f} | "
                     f"{speed['median_tokens_per_s']:.1f} ({speed['x_transformers']:.2f}) | {row['file_mib']:.1f} | "
                     f"{row['export_seconds']:.1f} |")
    load = ", ".join(f"{x:.1f}" for x in r["machine"]["load_average_end"])
    lines.append("")
    lines.append(f"`bench/bench_export.py`: {s['student']} with a LoRA (r={s['lora']['r']}, random B, seed "
                 f"{s['lora']['seed']}) on base `{s['base_gguf']}`; reference: {r['reference']['engine']}, mean "
                 f"{r['reference']['mean_generated_tokens']:.1f} tokens per answer; {s['speed_tokens']} tokens for "
                 f"speed, {s['n_threads']} thread, median of {s['speed_repeats']}; commit {r['git_commit'][:7]}, load "
                 f"average at the end {load}; `results/gguf_export.json`.")
    return "\n".join(lines)


def quickstart(r: dict) -> str:
    run = r["run"]
    lines = ["| variant | accuracy % (average) | answered % (average) | seconds |", "|---|---|---|---|"]
    for variant, row in r["results"].items():
        answered = r["answered"].get(variant, {}).get("average")
        lines.append(f"| {variant} | {_pct(row['average'])} | "
                     f"{'-' if answered is None else _pct(answered)} | {r['seconds'].get(variant, 0):.0f} |")
    questions = ", ".join(f"{n} {name}" for name, n in run["questions"].items())
    load = ", ".join(f"{x:.1f}" for x in run["load_average"])
    lines.append("")
    lines.append(f"`agentdistill distill configs/quickstart.toml` ({run['date']}, commit {run['commit']}): teacher "
                 f"{run['teacher']}, student {run['student']}, {run['trainset']} training questions, evaluated on "
                 f"{questions} questions, {run['threads']} evaluation threads, {run['teacher_threads']} teacher "
                 f"threads; whole job {run['wall_seconds'] / 60:.1f} min; load average at the end {load}; "
                 "`results/quickstart.json`." + (f" Failed: {', '.join(r['failed'])}." if r.get("failed") else ""))
    return "\n".join(lines)


def retrieval(r: dict) -> str:
    base = r["results"][0]
    lines = ["| system | R@1 | R@5 | R@20 | R@5 vs " + base["system"] + " | paired R@5 difference (95% CI) | p50 / p99 ms "
             "(tool call) |", "|---|---|---|---|---|---|---|"]
    for row in r["results"]:
        d = row["R@5 vs first"]
        lines.append(f"| {row['system']} | {row['R@1']:.3f} | {row['R@5']:.3f} | {row['R@20']:.3f} | "
                     f"{row['R@5'] / base['R@5']:.2f}x | {d['difference']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) | "
                     f"{row['p50_ms']:.1f} / {row['p99_ms']:.1f} |")
    datasets = sorted(r["by_dataset"])
    lines += ["", "| system | " + " | ".join(f"{d} R@1 / R@5 / R@20 (n={r['by_dataset'][d]})" for d in datasets) + " |",
              "|---|" + "---|" * len(datasets)]
    for row in r["results"]:
        cells = [" / ".join(f"{row['by_dataset'][d][f'R@{k}']:.2f}" for k in (1, 5, 20)) for d in datasets]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    colbert = r["costs"].get("ColBERT (PLAID)", {})
    m = r["machine"]
    tuned = (r.get("tuning") or {}).get("best") or {}
    load = ", ".join(f"{x:.1f}" for x in m["load_average_end"])
    lines.append("")
    lines.append(f"`bench/bench_retrieval.py` ({m['date']}, commit {m['commit']}, {m['cpu_count']} cores, load average "
                 f"at the end {load}): {r['passages']:,} passages, {r['questions']} held-out dev questions (all gold "
                 f"titles in the corpus); the hybrid's setting ({', '.join(f'{k}={v}' for k, v in tuned.items())}) "
                 f"picked on {(r.get('tuning') or {}).get('questions', 0)} other dev questions. ColBERT index: "
                 f"{colbert.get('build_s', 0):,.0f} s to build, {colbert.get('num_embeddings', 0):,} token embeddings, "
                 f"{colbert.get('num_partitions', 0):,} centroids, {colbert.get('index_mb', 0):.0f} MB; checkpoint "
                 f"`{Path(colbert.get('checkpoint', '')).name}`. `results/{r.get('name', 'retrieval')}.json`.")
    if colbert.get("build_s") and not colbert.get("reused_index"):
        rate = r["passages"] / colbert["build_s"]
        lines.append(f"Build rate {rate:.1f} passages/s end to end (encoding, k-means, compression): the whole "
                     f"54,068-passage corpus would take ~{54068 / rate:,.0f} s at that rate.")
    return "\n".join(lines)


def _table2_rows(r: dict) -> list[str]:
    """The summary's own table order (agentdistill.benchmarks.summary.row_rank); ties keep the summary's order."""
    return sorted(r["rows"], key=row_rank)


def _table2_source(r: dict) -> str:
    return (f"Teacher {r['teacher']}, student {r['student']}, commit {r['commit']}, settings {r['settings_hash']}; "
            "`results/table2_cpu/summary.json`.")


def table2_cpu(r: dict) -> str:
    """Accuracy % (95% CI) per benchmark and the macro average (agentdistill.benchmarks.summary)."""
    benches = list(r["questions"])
    lines = ["| row | " + " | ".join(f"{b} (n={r['questions'][b]})" for b in benches) + " | average |",
             "|---|" + "---|" * (len(benches) + 1)]
    for row in _table2_rows(r):
        cells = []
        for b in benches + ["average"]:
            c = r["rows"][row].get(b)
            cells.append("-" if c is None else f"{_pct(c['accuracy'])} ({_pct(c['ci_low'])}-{_pct(c['ci_high'])})")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, d in r["paired"].items():  # a bullet each: consecutive plain lines would run into one paragraph
        lines.append(f"- {name}: {100 * d['diff']:+.1f} points (95% CI {100 * d['ci_low']:+.1f} to "
                     f"{100 * d['ci_high']:+.1f}), n={d['n']} paired questions")
    g = r.get("gap_closed")
    lines.append("- gap closed: " + (
        f"{_pct(g['value'])}% of the teacher-agent minus student-agent gap ({_pct(g['teacher_agent'])} - "
        f"{_pct(g['student_agent'])}) by {g['best']} ({_pct(g['best_average'])})" if g else
        "n/a (needs teacher-agent above student-agent and a distilled row)"))
    lines += ["", _table2_source(r)]
    return "\n".join(lines)


def table2_cpu_diagnostics(r: dict) -> str:
    """Per row, the per-benchmark diagnostics averaged over benchmarks ("-": not applicable, e.g. CoT steps)."""
    columns = (("answered %", "answered", _pct), ("parse errors % of steps", "parse_error_rate", _pct),
               ("void turns % of steps", "void_turn_rate", _pct), ("out of steps %", "forced", _pct),
               ("mean steps", "mean_steps", lambda x: f"{x:.1f}"), ("mean tokens", "mean_tokens", lambda x: f"{x:.0f}"),
               ("s / question", "mean_seconds", lambda x: f"{x:.1f}"), ("searched %", "search_rate", _pct))
    lines = ["| row | " + " | ".join(c[0] for c in columns) + " | errors |", "|---|" + "---|" * (len(columns) + 1)]
    for row in _table2_rows(r):
        per_bench = list(r["diagnostics"][row].values())
        cells = []
        for _, key, fmt in columns:
            values = [d[key] for d in per_bench if d.get(key) is not None]
            cells.append(fmt(sum(values) / len(values)) if values else "-")
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {sum(d['errors'] for d in per_bench)} |")
    lines += ["", "Means over benchmarks; searched: answered questions whose agent called search before answering "
              "(factual agents only). " + _table2_source(r)]
    return "\n".join(lines)


def math_grading(r: dict) -> str:
    lines = ["| answer pairs | n | ours right | math-verify right | only ours | only math-verify |", "|---|---|---|---|---|---|"]
    for key, label in r["settings"]["sets"].items():
        rows = r["sets"][key]["by_rule_or_source"].values()
        n, ours, mv = (sum(x[f] for x in rows) for f in ("n", "ours_correct", "math_verify_correct"))
        only_ours, only_mv = (sum(x[f] for x in rows) for f in ("ours_only", "math_verify_only"))
        lines.append(f"| {label} | {n:,} | {ours:,} | {mv:,} | {only_ours:,} | {only_mv:,} |")
    lines.append("")
    lines.append(f"`{r['made_by']}`: math-verify {r['versions']['math-verify']} with its default extraction and "
                 "verification; for the wrong pairs \"right\" is a false positive; `results/math_grading.json` (the "
                 "disagreements are listed there).")
    return "\n".join(lines)


def search_latency(r: dict) -> str:
    labels = {"encode": "query encoding (ColBERT encoder, 2 threads)", "encode_1_thread": "query encoding, 1 thread",
              "plaid_search": "PLAID search (encoded query -> top k)", "colbert_tool": "ColBERT tool call, end to end",
              "hybrid_tool": "hybrid tool call, end to end"}
    lines = ["| part of one search | p50 ms | p99 ms |", "|---|---|---|"]
    lines += [f"| {labels[k]} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} |" for k, v in r["timings"].items()]
    m = r["machine"]
    lines.append("")
    lines.append(f"`bench/bench_search_latency.py` ({m['date']}, commit {m['commit']}): {r['passages']:,} passages, "
                 f"{r['queries']} queries, k={r['k']}; load average {m['load_average_start'][0]:.1f} -> "
                 f"{m['load_average_end'][0]:.1f} on {m['cpu_count']} cores.")
    return "\n".join(lines)


RENDERERS = {"math_grading": math_grading, "search_latency_4000": search_latency, "first_thought_prefix": first_thought_prefix, "engine": engine, "gguf_export": gguf_export,
             "quickstart": quickstart, "retrieval": retrieval, "retrieval_54k": retrieval,
             "table2_cpu": table2_cpu, "table2_cpu_diagnostics": table2_cpu_diagnostics}
# renderer -> its file under ROOT, where that is not results/NAME.json
RESULTS_FILES = {"table2_cpu": "results/table2_cpu/summary.json",
                 "table2_cpu_diagnostics": "results/table2_cpu/summary.json"}


def render(readme: str) -> str:
    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in RENDERERS:
            sys.exit(f"README block results:{name} has no renderer in scripts/readme_tables.py")
        path = ROOT / RESULTS_FILES.get(name, f"results/{name}.json")
        if not path.is_file():
            sys.exit(f"README block results:{name} needs {path.relative_to(ROOT)}; run the experiment that writes it")
        body = RENDERERS[name](json.loads(path.read_text()))
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:(\w+) -->.*?<!-- /results:\1 -->", block, readme, flags=re.S)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results")
    a = ap.parse_args()
    path = ROOT / "README.md"
    old = path.read_text()
    new = render(old)
    if a.check:
        return int(new != old)
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
