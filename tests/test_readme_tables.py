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
