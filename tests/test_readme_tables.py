"""The README's result tables are generated from results/*.json (scripts/readme_tables.py): they must be in sync."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_match_the_results_files():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- results:" in readme
    assert _tables().render(readme) == readme, "README tables are stale: run .venv/bin/python scripts/readme_tables.py"


def test_a_block_without_a_results_file_is_an_error(tmp_path, monkeypatch):
    tables = _tables()
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    try:
        tables.render("<!-- results:first_thought_prefix -->\n<!-- /results:first_thought_prefix -->")
    except SystemExit as e:
        assert "results/first_thought_prefix.json" in str(e)
    else:
        raise AssertionError("a missing results file must stop the script")


def _table2_summary():
    """A results/table2_cpu/summary.json as agentdistill.benchmarks.summary writes it, figures chosen by hand."""
    def acc(a, n, lo, hi):
        return {"accuracy": a, "n": n, "ci_low": lo, "ci_high": hi}

    def diag(answered, parse, search):
        return {"answered": answered, "parse_error_rate": parse, "void_turn_rate": None if parse is None else 0.1,
                "mean_steps": None if parse is None else 3.0, "mean_tokens": 250.0, "mean_seconds": 4.0,
                "forced": 0.0, "search_rate": search, "errors": 1}

    return {
        "commit": "abc1234", "settings_hash": "0123456789ab", "teacher": "T-0.5B", "student": "S-135M",
        "rows": {"agent-distill": {"math500": acc(0.5, 4, 0.15, 0.85), "hotpotqa": acc(0.4, 5, 0.1176, 0.7693),
                                   "average": acc(0.45, 9, 0.2, 0.7)},
                 "student-cot": {"math500": acc(0.0, 4, 0.0, 0.49), "hotpotqa": acc(0.2, 5, 0.036, 0.624),
                                 "average": acc(0.1, 9, 0.0, 0.3)}},
        "paired": {"agent-distill vs student-agent": {"diff": 0.125, "ci_low": -0.05, "ci_high": 0.3, "n": 9,
                                                      "by_benchmark": {}}},
        "gap_closed": None,
        "diagnostics": {"agent-distill": {"math500": diag(1.0, 0.25, None), "hotpotqa": diag(0.8, 0.35, 0.5)},
                        "student-cot": {"math500": diag(0.5, None, None), "hotpotqa": diag(0.7, None, None)}},
        "questions": {"math500": 4, "hotpotqa": 5}, "settings": {},
    }


def test_table2_cpu_blocks_render_from_the_summary_file(tmp_path, monkeypatch):
    import json

    tables = _tables()
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    path = tmp_path / "results" / "table2_cpu" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_table2_summary()))
    out = tables.render("<!-- results:table2_cpu -->\n<!-- /results:table2_cpu -->\n"
                        "<!-- results:table2_cpu_diagnostics -->\n<!-- /results:table2_cpu_diagnostics -->")
    lines = out.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| row | math500 (n=4) | hotpotqa (n=5) | average |"
    assert table[1] == "| student-cot | 0.0 (0.0-49.0) | 20.0 (3.6-62.4) | 10.0 (0.0-30.0) |"  # table order
    assert table[2] == "| agent-distill | 50.0 (15.0-85.0) | 40.0 (11.8-76.9) | 45.0 (20.0-70.0) |"
    assert "- agent-distill vs student-agent: +12.5 points (95% CI -5.0 to +30.0), n=9 paired questions" in lines
    assert any(line.startswith("- gap closed: n/a") for line in lines)
    assert "commit abc1234, settings 0123456789ab; `results/table2_cpu/summary.json`." in out
    # diagnostics: means over benchmarks, "-" where a figure does not apply (CoT has no steps, math no search)
    assert "| agent-distill | 90.0 | 30.0 | 10.0 | 0.0 | 3.0 | 250 | 4.0 | 50.0 | 2 |" in lines
    assert "| student-cot | 60.0 | - | - | 0.0 | - | 250 | 4.0 | - | 2 |" in lines
