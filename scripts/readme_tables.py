"""Regenerate the README's result tables from the JSON files under results/ (no figure is typed by hand).

    .venv/bin/python scripts/readme_tables.py          # rewrite every block in README.md
    .venv/bin/python scripts/readme_tables.py --check  # exit 1 if README.md is out of date

A block is the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->`; NAME picks the renderer below
and the file results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

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


RENDERERS = {"first_thought_prefix": first_thought_prefix}


def render(readme: str) -> str:
    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in RENDERERS:
            sys.exit(f"README block results:{name} has no renderer in scripts/readme_tables.py")
        path = ROOT / "results" / f"{name}.json"
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
