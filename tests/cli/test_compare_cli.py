"""`agentdistill compare EXPERIMENT` prints the table from a temporary MLflow store and writes the chart."""

from agentdistill import tracking
from agentdistill.cli.main import main


def test_compare_prints_table_and_writes_chart(tmp_path, mlflow_store, capsys):
    for name, acc in [("student-cot", 0.05), ("cot-distill", 0.15), ("agent-distill", 0.35)]:
        with tracking.start_run(name, experiment="exp", params={"variant": name}):
            tracking.log_accuracies({"math500": acc, "aime": acc / 5})
    out_png = tmp_path / "chart.png"
    assert main(["compare", "exp", "--output", str(out_png)]) == 0
    out = capsys.readouterr().out
    for text in ["student-cot", "cot-distill", "agent-distill", "math500", "aime", "average", "35.0", "21.0"]:
        assert text in out, text
    assert out_png.is_file() and (tmp_path / "chart.md").is_file()
    assert "logged to MLflow run" in out


def test_compare_unknown_experiment_exits_2(mlflow_store, capsys):
    assert main(["compare", "missing", "--no-log"]) == 2
    assert "no MLflow experiment named 'missing'" in capsys.readouterr().out
