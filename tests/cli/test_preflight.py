"""What a run would fail on is found before any work, by the dry run and the real run alike: model names, the
retrieval index, the output folder, the tracking store, the question files. One message each, no traceback."""

import time
from pathlib import Path

import pytest

from agentdistill.cli import distill
from agentdistill.cli.main import main
from tests.cli.question_lm import scripted_lm
from tests.cli.test_errors import flat, write_toml
from tests.tracking.store import refused_url

ROOT = Path(__file__).resolve().parents[2]


def job(tmp_path, **tables) -> Path:
    data = {"run": {"experiment": "pre", "output_dir": str(tmp_path / "out")},
            "teacher": {"model": "qwen2.5-coder-0.5b-instruct"}, "student": {"model": "smollm2-135m-instruct"},
            "distill": {"variants": ["student-cot"]}, "eval": {"benchmarks": ["gsm-hard"], "limit": 1},
            "sag": {"enabled": False}}
    for name, values in tables.items():
        data.setdefault(name, {}).update(values)
    return write_toml(tmp_path / "job.toml", data)


@pytest.fixture
def no_models(monkeypatch):
    """The checks run before any model is built: building one fails the test."""
    monkeypatch.setattr(distill, "make_lm", lambda *a, **k: pytest.fail("a model was built before the checks"))


def run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, flat(text)


def test_a_wrong_model_name(tmp_path, capsys, no_models):
    cfg = job(tmp_path, student={"model": "smollm2-136m-instruct"})
    for argv in (["distill", str(cfg), "--dry-run"], ["distill", str(cfg)]):
        code, out = run(argv, capsys)
        assert code == 2 and "config OK" not in out
        assert "[student] model: unknown model 'smollm2-136m-instruct'" in out
        assert "did you mean 'smollm2-135m-instruct'?" in out and "qwen2.5-coder-0.5b-instruct" in out


def test_an_index_that_was_never_built(tmp_path, capsys, monkeypatch, no_models):
    monkeypatch.setenv("AGENTDISTILL_HOME", str(tmp_path / "home"))  # a fresh clone: no index built yet
    code, out = run(["distill", str(ROOT / "configs" / "factual.toml"), "--dry-run"], capsys)
    assert code == 2 and "config OK" not in out
    assert "[retrieval] index: no retrieval index 'multihop'" in out and "agentdistill index build" in out


def test_an_output_folder_that_cannot_be_created(tmp_path, capsys, no_models):
    (tmp_path / "a_file").write_text("")
    cfg = job(tmp_path, run={"output_dir": str(tmp_path / "a_file" / "out")})
    code, out = run(["distill", str(cfg), "--dry-run"], capsys)
    assert code == 2 and f"[run] output_dir: cannot create {tmp_path / 'a_file' / 'out'}" in out
    assert f"{tmp_path / 'a_file'} is a file" in out


def test_an_unreachable_tracking_store(tmp_path, capsys, no_models):
    url = refused_url()
    cfg = job(tmp_path, run={"tracking_uri": url})
    for argv in (["distill", str(cfg), "--dry-run"], ["distill", str(cfg)]):
        start = time.monotonic()
        code, out = run(argv, capsys)
        assert code == 2 and time.monotonic() - start < 15
        assert f"[run] tracking_uri: MLflow tracking store {url} is not reachable" in out and "config OK" not in out


def test_every_problem_is_listed_at_once(tmp_path, capsys, no_models):
    (tmp_path / "a_file").write_text("")
    cfg = job(tmp_path, run={"output_dir": str(tmp_path / "a_file" / "out"), "tracking_uri": refused_url()},
              teacher={"model": "qwen2.5-coder-0.5b-instrct"}, distill={"variants": ["teacher-cot"]})
    code, out = run(["distill", str(cfg), "--dry-run"], capsys)
    assert code == 2
    for where in ("[teacher] model:", "[run] output_dir:", "[run] tracking_uri:"):
        assert where in out, where
    assert "3 problems" in out


def test_a_broken_trainset_file_in_the_real_run(tmp_path, capsys, no_models):
    broken = tmp_path / "train.json"
    broken.write_text('{"examples": [{"id": 1, "question": "2+2?", "answer": "4"},')
    cfg = job(tmp_path, trainset={"file": str(broken)}, distill={"variants": ["agent-distill"]})
    code, out = run(["distill", str(cfg)], capsys)
    assert code == 2 and f"{broken}: not valid JSON (line 1" in out and "[trainset] file:" in out


def test_eval_with_a_model_typo_lists_the_known_names(tmp_path, capsys):
    code, out = run(["eval", "--model", "smollm2-136m-instruct", "--benchmarks", "gsm-hard", "--limit", "1",
                     "--output-dir", str(tmp_path / "ev")], capsys)
    assert code == 2
    assert "--model: unknown model 'smollm2-136m-instruct'; did you mean 'smollm2-135m-instruct'?" in out
    assert "smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct" in out
    assert "a Hugging Face folder" in out and "api-base" in out  # the other kinds of --model


def test_a_model_folder_without_weights_and_an_offline_hub_id(tmp_path, capsys, monkeypatch, no_models):
    (tmp_path / "empty").mkdir()
    cfg = job(tmp_path, student={"model": str(tmp_path / "empty")})
    code, out = run(["distill", str(cfg), "--dry-run"], capsys)
    assert code == 2 and "holds no config.json" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = job(tmp_path, student={"model": "nobody-xyz/not-a-model"})
    code, out = run(["distill", str(cfg), "--dry-run"], capsys)
    assert code == 2 and "'nobody-xyz/not-a-model' is not in the local Hugging Face cache" in out


def test_models_on_a_server_are_not_second_guessed(tmp_path, capsys, mlflow_store):
    cfg = job(tmp_path, teacher={"model": "openai/my-teacher", "api_base": "http://127.0.0.1:8000/v1"},
              distill={"variants": ["teacher-cot"]})
    code, out = run(["distill", str(cfg), "--dry-run"], capsys)
    assert code == 0 and "config OK" in out


def test_eval_checks_before_loading_the_model(tmp_path, capsys, monkeypatch):
    lm, engine = scripted_lm({})
    monkeypatch.setattr(distill, "make_lm", lambda model, default_max_tokens=512: lm)
    (tmp_path / "a_file").write_text("")
    code, out = run(["eval", "--model", "smollm2-135m-instruct", "--benchmarks", "gsm-hard", "--limit", "1",
                     "--output-dir", str(tmp_path / "a_file" / "ev")], capsys)
    assert code == 2 and "--output-dir: cannot create" in out and engine.calls == 0
