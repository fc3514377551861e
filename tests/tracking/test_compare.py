"""Comparison of an experiment's runs: table rows/columns from MLflow, markdown, PNG chart, comparison run."""

import mlflow
import pytest
from rich.console import Console

from agentdistill import tracking
from agentdistill.tracking import compare

RESULTS = {"student-agent": {"math500": 0.1, "gsm-hard": 0.0}, "agent-distill": {"math500": 0.3, "gsm-hard": 0.2},
           "agent-distill+sag": {"math500": 0.4, "gsm-hard": 0.2}}


@pytest.fixture
def store(mlflow_store):
    uri = mlflow_store
    for name, accs in RESULTS.items():
        with tracking.start_run(name, experiment="cmp", tracking_uri=uri, params={"variant": name}):
            tracking.log_accuracies(accs)
    with tracking.start_run("compile:agent-distill", experiment="cmp", tracking_uri=uri, kind="compile"):
        pass  # no accuracy metrics: not a row
    return uri


def test_collect_reads_rows_and_columns(store):
    table = compare.collect("cmp", tracking_uri=store)
    assert list(table.rows) == ["student-agent", "agent-distill", "agent-distill+sag"]
    assert table.benchmarks == ["math500", "gsm-hard"]
    assert table.rows["agent-distill"]["gsm-hard"] == 0.2
    assert table.average("agent-distill+sag") == pytest.approx(0.3)


def test_table_markdown_and_chart(store, tmp_path):
    table = compare.collect("cmp", tracking_uri=store)
    console = Console(record=True, width=120)
    console.print(compare.results_table(table))
    text = console.export_text()
    assert "agent-distill+sag" in text and "average" in text and "30.0" in text and "40.0" in text
    md = compare.to_markdown(table)
    assert md.splitlines()[0] == "| variant | math500 | gsm-hard | average |"
    assert "| agent-distill | 30.0 | 20.0 | 25.0 |" in md
    png = compare.bar_chart(table, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    run_id = compare.log_comparison(table, png, tracking_uri=store)
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run_id)] == ["c.png"]
    assert list(compare.collect("cmp", tracking_uri=store).rows) == list(table.rows)  # the chart run is no row


def test_rerun_of_a_variant_replaces_its_row(store):
    with tracking.start_run("agent-distill", experiment="cmp", tracking_uri=store, params={"variant": "agent-distill"}):
        tracking.log_accuracies({"math500": 0.9, "gsm-hard": 0.9})
    assert compare.collect("cmp", tracking_uri=store).rows["agent-distill"]["math500"] == 0.9


def test_missing_experiment_names_the_store(store):
    with pytest.raises(LookupError, match=r"no MLflow experiment named 'nope'.*experiments there: .*cmp"):
        compare.collect("nope", tracking_uri=store)


def test_an_all_zero_chart_says_so(tmp_path):
    table = compare.table_from_results({"student-cot": {"math500": 0.0}, "student-agent": {"math500": 0.0}}, "zero")
    fig = compare.figure(table)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("all zero" in t for t in texts)  # not empty axes
    fig = compare.figure(compare.table_from_results({"a": {"math500": 0.5}}, "some"))
    assert not [t for ax in fig.axes for t in ax.texts]
