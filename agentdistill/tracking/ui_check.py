"""Check in a real browser that the MLflow UI shows the project's runs and metrics, lined up for comparison.

    python -m agentdistill.tracking.ui_check                       # demo runs in a temporary store
    python -m agentdistill.tracking.ui_check --tracking-uri sqlite:///mlflow.db --experiment quickstart
    # -> ./mlflow_ui_check/{runs,compare}.png (screenshots) and .html (rendered DOM); exit 1 if a check fails

Starts `mlflow server` on 127.0.0.1 (a free port) over the store, opens the experiment's runs page and the run
comparison page in headless Chromium (Debian's `chromium`), saves screenshots and the rendered DOM, and asserts
that every run name and every `accuracy/<benchmark>` metric appears. Needs /usr/bin/chromium (apt install chromium).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]
DEMO = {"student-agent": {"math500": 0.10, "gsm-hard": 0.05}, "agent-distill": {"math500": 0.30, "gsm-hard": 0.20},
        "agent-distill+sag": {"math500": 0.40, "gsm-hard": 0.25}}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_demo_store(folder: Path, experiment: str = "ui-check") -> str:
    """A sqlite store with three evaluated variants and a comparison chart, written with the project's helpers."""
    from agentdistill import tracking
    from agentdistill.tracking import compare

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri())
    for name, accs in DEMO.items():
        with tracking.start_run(name, experiment=experiment, tracking_uri=uri,
                                params={"variant": name, "student": "smollm2-135m-instruct", "sag": "+sag" in name}):
            tracking.log_accuracies(accs)
    table = compare.collect(experiment, tracking_uri=uri)
    chart = compare.bar_chart(table, folder / "comparison.png")
    compare.log_comparison(table, chart, tracking_uri=uri)
    return uri


class MlflowServer:
    """`mlflow server` on loopback over a store, for the lifetime of a `with` block."""

    def __init__(self, tracking_uri: str, artifacts: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
                    "--default-artifact-root", artifacts.as_uri(), "--host", "127.0.0.1",
                    "--port", str(self.port), "--workers", "1"]
        self.log = log
        self.proc = None

    def __enter__(self):
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"mlflow server did not answer on {self.url} within 180 s; see {self.log}")

    def __exit__(self, *exc):
        import os
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its worker(s)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return False

    def api(self, path: str, payload: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


def chromium(browser: str, url: str, *, screenshot: Path | None = None, dump_dom: bool = False,
             budget_ms: int = 25_000, size=(1600, 1000)) -> str:
    """Run headless Chromium once on `url` (fresh profile); returns the rendered DOM when dump_dom."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--virtual-time-budget={budget_ms}"]
        cmd += [f"--screenshot={screenshot}"] if screenshot else []
        cmd += ["--dump-dom"] if dump_dom else []
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
        return out.stdout


def check(tracking_uri: str, experiment: str, out_dir: Path, browser: str) -> list[str]:
    """Open the experiment in the UI; returns the list of problems (empty: all runs and metrics were shown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = []
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp, \
            MlflowServer(tracking_uri, Path(tmp) / "artifacts", out_dir / "server.log") as server:
        with urllib.request.urlopen(server.url + "/api/2.0/mlflow/experiments/get-by-name?" +
                                    urllib.parse.urlencode({"experiment_name": experiment}), timeout=30) as r:
            exp = json.loads(r.read())["experiment"]
        runs = server.api("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                          "max_results": 100})["runs"]
        evaluated = [r for r in runs if any(m["key"].startswith("accuracy/") for m in r["data"].get("metrics", []))]
        if not evaluated:
            return [f"experiment {experiment!r} has no runs with accuracy/* metrics"]
        names = [r["info"]["run_name"] for r in evaluated]
        metrics = sorted({m["key"] for r in evaluated for m in r["data"]["metrics"] if m["key"].startswith("accuracy/")})
        ids = [r["info"]["run_id"] for r in evaluated]
        pages = {
            "runs": f"{server.url}/#/experiments/{exp['experiment_id']}/runs",
            "compare": f"{server.url}/#/compare-runs?runs={urllib.parse.quote(json.dumps(ids))}"
                       f"&experiments={urllib.parse.quote(json.dumps([exp['experiment_id']]))}",
        }
        for page, url in pages.items():
            png = out_dir / f"{page}.png"
            chromium(browser, url, screenshot=png, size=(1600, 1000) if page == "runs" else (1600, 2000))
            dom = chromium(browser, url, dump_dom=True)
            (out_dir / f"{page}.html").write_text(dom)
            if not png.is_file() or png.stat().st_size < 5_000:
                problems.append(f"{page}: no screenshot at {png}")
            missing_runs = [n for n in names if n not in dom]
            if missing_runs:
                problems.append(f"{page}: run names not shown: {missing_runs}")
            if page == "compare":  # the comparison table lists every metric key side by side
                missing = [m for m in metrics if m not in dom]
                if missing:
                    problems.append(f"{page}: metrics not shown: {missing}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agentdistill.tracking.ui_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracking-uri", default=None, help="store to show (default: a temporary demo store)")
    ap.add_argument("--experiment", default="ui-check")
    ap.add_argument("--out", default="mlflow_ui_check", help="folder for screenshots and DOM dumps")
    args = ap.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("chromium not found: install it (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="agentdistill-ui-store-") as tmp:
        uri = args.tracking_uri or make_demo_store(Path(tmp), args.experiment)
        problems = check(uri, args.experiment, Path(args.out), browser)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"OK: runs and accuracy metrics shown in the MLflow UI; screenshots in {args.out}/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
