"""An MLflow store that is not there: found in seconds before any work; one that dies mid-run loses no results."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentdistill.benchmarks import load_benchmark
from agentdistill.cli import distill
from agentdistill.cli.main import main
from tests.cli.question_lm import scripted_lm
from tests.cli.test_errors import flat, write_toml
from tests.tracking.store import _template_db, refused_url


@pytest.fixture
def dead_store(monkeypatch):
    url = refused_url()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    return url


def timed(argv, capsys):
    start = time.monotonic()
    code = main(argv)
    captured = capsys.readouterr()
    return code, time.monotonic() - start, flat(captured.out + captured.err)


def test_eval_fails_in_seconds_before_evaluating(dead_store, tmp_path, monkeypatch, capsys):
    lm, engine = scripted_lm({})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    code, seconds, out = timed(["eval", "--model", "smollm2-135m-instruct", "--program", "cot", "--benchmarks",
                                "gsm-hard", "--limit", "1", "--output-dir", str(tmp_path / "ev")], capsys)
    assert code == 2 and seconds < 15 and engine.calls == 0
    assert f"$MLFLOW_TRACKING_URI: MLflow tracking store {dead_store} is not reachable" in out
    assert "Traceback" not in out


def test_distill_fails_in_seconds_before_any_work(dead_store, tmp_path, monkeypatch, capsys):
    lm, engine = scripted_lm({})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    cfg = write_toml(tmp_path / "c.toml", {
        "run": {"output_dir": str(tmp_path / "out")},
        "teacher": {"model": "qwen2.5-coder-0.5b-instruct"}, "student": {"model": "smollm2-135m-instruct"},
        "distill": {"variants": ["student-cot"]}, "eval": {"benchmarks": ["gsm-hard"], "limit": 1},
        "sag": {"enabled": False}})
    code, seconds, out = timed(["distill", str(cfg)], capsys)
    assert code == 2 and seconds < 15 and engine.calls == 0 and not (tmp_path / "out").exists()
    assert dead_store in out and "is not reachable" in out


def test_compare_fails_in_seconds(dead_store, capsys):
    code, seconds, out = timed(["compare", "anything"], capsys)
    assert code == 2 and seconds < 15 and f"{dead_store} is not reachable" in out
    code, seconds, out = timed(["compare", "anything", "--tracking-uri", dead_store], capsys)
    assert code == 2 and seconds < 15 and f"--tracking-uri: MLflow tracking store {dead_store}" in out


# ----------------------------------------------------------------------------- a real server that dies mid-run


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a loopback port (its own process group, so that killing it kills its workers)."""
    import shutil

    folder = tmp_path / "server"
    folder.mkdir()
    shutil.copy(_template_db(), folder / "mlflow.db")
    port = int(refused_url().rsplit(":", 1)[1])
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    yield url, stop
    stop()


@pytest.mark.slow  # the real server takes 15-40 s to start on a 2-core machine
@pytest.mark.ci
def test_a_store_that_dies_during_eval_keeps_the_results_and_prints_the_table(mlflow_server, tmp_path,
                                                                               monkeypatch, capsys):
    url, stop = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    gsm = load_benchmark("gsm-hard", limit=2)
    lm, engine = scripted_lm({gsm[0].question[:60]: "218983 * 2 * 30\n\nAnswer: 13138980"})
    complete = engine.complete

    def dies_on_the_first_call(request):
        stop()  # the run was opened before the evaluation: the server goes away under it
        return complete(request)

    engine.complete = dies_on_the_first_call
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    code, seconds, out = timed(["eval", "--model", "smollm2-135m-instruct", "--program", "cot", "--benchmarks",
                                "gsm-hard", "--limit", "2", "--output-dir", str(tmp_path / "ev"), "--run-name",
                                "lost"], capsys)
    assert code == 1 and seconds < 90
    assert f"MLflow tracking store {url} stopped answering" in out and "not logged" in out
    assert "lost" in out and "50.0" in out  # the table, printed anyway
    rows = [json.loads(x) for x in (tmp_path / "ev" / "lost" / "gsm-hard.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and sum(r["correct"] for r in rows) == 1
    assert "Traceback" not in out
