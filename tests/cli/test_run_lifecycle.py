"""A job killed with kill -9 leaves its MLflow run RUNNING; the rerun of the same job continues that run and reuses
the runs that finished, so every variant has one run, and none stays RUNNING."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from rich.console import Console

from agentdistill.cli import distill
from agentdistill.cli.config import load_config
from tests.cli.question_lm import scripted_lm
from tests.cli.test_errors import write_toml

ROOT = Path(__file__).resolve().parents[2]

# the job in a child process: its LM answers until STALL_AFTER calls, then hangs (where the kill -9 lands)
DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import dspy

    from agentdistill.cli import distill
    from agentdistill.cli.config import load_config
    from tests.cli.question_lm import ByQuestionEngine

    class Stalls(ByQuestionEngine):
        def complete(self, request):
            if self.calls >= int(os.environ["STALL_AFTER"]):
                Path(os.environ["STALLED"]).write_text("stalled")
                time.sleep(600)
            return super().complete(request)

    lm = dspy.LM("scripted/student", engine=Stalls({}), cache=False)
    distill.make_lm = lambda model, default_max_tokens=512: lm
    distill.run_job(load_config(sys.argv[1]))
""")


def runs_of(experiment: str) -> list:
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def config(tmp_path) -> Path:
    return write_toml(tmp_path / "job.toml", {
        "run": {"experiment": "killed", "output_dir": str(tmp_path / "out")},
        "teacher": {"model": "unused"}, "student": {"model": "scripted"},
        "distill": {"variants": ["student-cot"]}, "eval": {"benchmarks": ["gsm-hard"], "limit": 2},
        "sag": {"enabled": True, "n": 2, "programs": ["cot"]}})


def test_a_killed_job_resumes_its_run_and_reuses_the_finished_ones(mlflow_store, tmp_path, monkeypatch):
    cfg = config(tmp_path)
    (tmp_path / "driver.py").write_text(DRIVER)
    stalled = tmp_path / "stalled"
    # student-cot: 2 calls; student-cot+sag: 2 questions x 2 candidates; the 4th call hangs inside student-cot+sag
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STALL_AFTER": "3", "STALLED": str(stalled),
           "MLFLOW_TRACKING_URI": mlflow_store}
    child = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(cfg)], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not stalled.exists():
        if child.poll() is not None:
            pytest.fail(f"the job ended before it stalled: {child.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "the job did not reach the stall"
        time.sleep(0.2)
    child.kill()  # SIGKILL: no finally, no atexit, no end_run
    child.wait()
    before = {r.info.run_name: r for r in runs_of("killed")}
    assert before["student-cot"].info.status == "FINISHED" and before["student-cot+sag"].info.status == "RUNNING"

    lm, engine = scripted_lm({})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    console = Console(record=True, width=200)
    results = distill.run_job(load_config(cfg), console)

    assert set(results) == {"student-cot", "student-cot+sag"}
    assert engine.calls == 4  # only the interrupted variant is evaluated again
    after = runs_of("killed")
    names = sorted(r.info.run_name for r in after)
    assert names == ["comparison", "student-cot", "student-cot+sag"]  # no duplicate
    assert all(r.info.status == "FINISHED" for r in after)
    by_name = {r.info.run_name: r for r in after}
    assert by_name["student-cot+sag"].info.run_id == before["student-cot+sag"].info.run_id  # resumed, not new
    assert by_name["student-cot+sag"].data.tags["agentdistill.resumed"] == "true"
    assert results["student-cot"]["gsm-hard"] == before["student-cot"].data.metrics["accuracy/gsm-hard"]
    text = console.export_text()
    assert "student-cot: finished in an earlier run of this job" in text
    assert "student-cot+sag: continuing MLflow run" in text


def test_a_job_that_is_still_running_is_not_taken_over(mlflow_store, tmp_path, monkeypatch):
    from agentdistill import tracking
    from agentdistill.tracking import lifecycle

    cfg = load_config(config(tmp_path))
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        key = distill.job_key(cfg)
        tags = {lifecycle.JOB_TAG: key, lifecycle.PROCESS_TAG: lifecycle.process_tag(alive.pid)}
        with tracking.start_run("student-cot", experiment="killed", tags=tags):
            pass
        mlflow.MlflowClient().update_run(runs_of("killed")[0].info.run_id, status="RUNNING")
        lm, engine = scripted_lm({})
        monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
        with pytest.raises(lifecycle.JobStillRunning, match=f"pid {alive.pid}"):
            distill.run_job(cfg, Console(record=True))
        assert engine.calls == 0
    finally:
        alive.kill()
        alive.wait()


def test_fresh_starts_new_runs(mlflow_store, tmp_path, monkeypatch):
    cfg = load_config(config(tmp_path))
    lm, engine = scripted_lm({})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    distill.run_job(cfg, Console(record=True))
    distill.run_job(cfg, Console(record=True))  # the same job again: reused, nothing evaluated
    assert engine.calls == 2 + 4 and len(runs_of("killed")) == 3
    distill.run_job(cfg, Console(record=True), fresh=True)
    assert engine.calls == 2 * (2 + 4) and len(runs_of("killed")) == 6
    run = next(r for r in runs_of("killed") if r.info.run_name == "student-cot")
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "config")]
    assert {"config/job.toml", "config/config.json"} <= set(artifacts)  # the file as written, and as read
