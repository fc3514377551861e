"""`evaluate` on a scripted program: per-example JSONL, accuracy, and the metrics in a temporary MLflow store."""

import json

import dspy
import mlflow
import pytest

from agentdistill.benchmarks.evaluation import evaluate
from agentdistill.benchmarks.loaders import load_benchmark


class Scripted(dspy.Module):
    """Answers from a fixed table (question -> answer); raises on questions it was told to fail."""

    def __init__(self, answers: dict, fail: set = frozenset()):
        super().__init__()
        self.answers, self.fail = answers, fail

    def forward(self, question):
        if question in self.fail:
            raise RuntimeError("scripted failure")
        trajectory = {"steps": [{"code": "x = 1"}, {"code": "final_answer(x)"}],
                      "usage": {"prompt_tokens": 100, "completion_tokens": 20}}
        return dspy.Prediction(answer=self.answers.get(question, "no idea"), trajectory=trajectory)


def test_evaluate_writes_jsonl_and_mlflow_metrics(tmp_path, mlflow_store):
    math = load_benchmark("math500", limit=4)
    hot = load_benchmark("hotpotqa", limit=2)
    answers = {math[0].question: "(3, pi/2)", math[1].question: "p - q", math[2].question: "wrong",
               hot[0].question: "Coahuila, Mexico", hot[1].question: "Larnelle"}
    program = Scripted(answers, fail={math[3].question})

    result = evaluate(program, {"math500": math, "hotpotqa": hot}, num_threads=2, output_dir=tmp_path / "out",
                      run_name="scripted", experiment="eval-test", params={"variant": "scripted"}, progress=False)

    assert result.accuracy == {"math500": 0.5, "hotpotqa": 0.5}
    assert result.average == 0.5
    assert result.f1["hotpotqa"] == pytest.approx((1 + 2 / 3) / 2)  # "Larnelle" vs "Larnelle Harris"
    rows = [json.loads(line) for line in (tmp_path / "out" / "math500.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == 4 and set(by_id) == {e.id for e in math}
    assert by_id[math[0].id]["correct"] is True and by_id[math[0].id]["prediction"] == "(3, pi/2)"
    assert by_id[math[2].id]["correct"] is False
    assert by_id[math[3].id]["error"].startswith("RuntimeError: scripted failure")
    assert by_id[math[2].id]["answered"] is True and by_id[math[3].id]["answered"] is False  # wrong, vs none
    assert result.answered == {"math500": 0.75, "hotpotqa": 1.0}
    assert by_id[math[0].id]["steps"] == 2 and by_id[math[0].id]["tokens"] == 120
    assert by_id[math[0].id]["seconds"] >= 0 and by_id[math[0].id]["gold"] == math[0].answer
    assert by_id[math[0].id]["trajectory"]["steps"][1] == {"code": "final_answer(x)"}

    run = mlflow.search_runs(experiment_names=["eval-test"], output_format="list")[0]
    m = run.data.metrics
    assert m["accuracy/math500"] == 0.5 and m["accuracy/hotpotqa"] == 0.5 and m["accuracy/average"] == 0.5
    assert m["answered/math500"] == 0.75 and m["answered/average"] == pytest.approx(0.875)
    assert m["errors/math500"] == 1 and m["examples/hotpotqa"] == 2 and m["mean_steps/math500"] == 2
    assert run.data.params["variant"] == "scripted" and run.info.run_name == "scripted"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    assert artifacts == {"eval/math500.jsonl", "eval/hotpotqa.jsonl"}


def test_evaluate_by_name_with_limit_and_judge(mlflow_store):
    from dspy.utils import DummyLM

    hot = load_benchmark("hotpotqa", limit=2)
    program = Scripted({hot[0].question: "the state of Coahuila", hot[1].question: "Larnelle Harris"})
    judge_lm = DummyLM([{"correct": "True"}])  # only the first (not exact) answer reaches the judge
    result = evaluate(program, ["hotpotqa"], limit=2, judge_lm=judge_lm, log_to_mlflow=False, progress=False)
    assert result.accuracy == {"hotpotqa": 0.5}  # EM: judge verdicts never mix into accuracy
    assert result.judge_accuracy == {"hotpotqa": 1.0}
    assert "judge_accuracy/hotpotqa" in result.metrics()


def test_evaluate_runs_on_dspy_evaluate_and_its_callbacks(mlflow_store):
    from dspy.utils.callback import BaseCallback

    class Seen(BaseCallback):
        def __init__(self):
            self.started, self.scores = [], []

        def on_evaluate_start(self, call_id, instance, inputs):
            self.started.append(inputs["callback_metadata"]["benchmark"])

        def on_evaluate_end(self, call_id, outputs, exception=None):
            self.scores.append(outputs.score)

    math = load_benchmark("math500", limit=2)
    seen = Seen()
    with dspy.context(callbacks=[seen]):
        evaluate(Scripted({math[0].question: "(3, pi/2)"}), {"math500": math}, log_to_mlflow=False, progress=False)
    assert seen.started == ["math500"] and seen.scores == [50.0]


def test_an_exhausted_error_budget_stops_with_the_finished_rows_kept(tmp_path):
    from agentdistill.benchmarks.evaluation import EvaluationAborted

    math = load_benchmark("math500", limit=5)
    program = Scripted({math[0].question: "(3, pi/2)"}, fail={e.question for e in math[1:]})
    with pytest.raises(EvaluationAborted, match=r"math500: .*after 2 examples failed.*max_errors=2.*"
                                                r"RuntimeError: scripted failure.*math500.jsonl"):
        evaluate(program, {"math500": math}, max_errors=2, output_dir=tmp_path, log_to_mlflow=False, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "math500.jsonl").read_text().splitlines()]
    assert rows[0]["correct"] is True and len(rows) == 3 and all(r["error"] for r in rows[1:])


def test_a_resubmitted_example_waits_for_its_first_run_instead_of_running_again():
    # dspy's ParallelExecutor resubmits a long-running example near the end (its straggler rule)
    import threading

    from agentdistill.benchmarks.evaluation import ROW, _Measured

    release, calls = threading.Event(), []

    def slow(question):
        calls.append(question)
        release.wait(5)
        return dspy.Prediction(answer="4")

    measured = _Measured(slow)
    out = []
    threads = [threading.Thread(target=lambda: out.append(measured(question="2+2?", **{ROW: 0}))) for _ in range(2)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert calls == ["2+2?"] and len(out) == 2 and out[0] is out[1]


def test_metrics_link_to_the_logged_model_and_each_benchmarks_questions(mlflow_store):
    math, hot = load_benchmark("math500", limit=2), load_benchmark("hotpotqa", limit=1)
    mlflow.set_experiment("eval-models")
    model = mlflow.initialize_logged_model(name="student")
    evaluate(Scripted({math[0].question: "(3, pi/2)"}), {"math500": math, "hotpotqa": hot}, run_name="linked",
             experiment="eval-models", model_id=model.model_id, progress=False)
    linked = {m.key: m for m in mlflow.get_logged_model(model.model_id).metrics}
    assert linked["accuracy/math500"].value == 0.5 and linked["accuracy/math500"].dataset_name == "math500"
    assert linked["f1/hotpotqa"].dataset_name == "hotpotqa" and linked["accuracy/average"].dataset_name is None


def test_a_resubmitted_examples_second_metric_call_makes_no_second_row_or_judge_call():
    from agentdistill.benchmarks.evaluation import ROW, _Measured, _Recorder

    hot = load_benchmark("hotpotqa", limit=1)[0]
    verdicts = []

    class Judge:
        def __call__(self, *args):
            verdicts.append(args)
            return True

    rows = []
    recorder = _Recorder("hotpotqa", _Measured(lambda **_: None), Judge(), None, rows.append)
    example = hot.copy(**{ROW: 0})
    pred = dspy.Prediction(answer=hot.answer)
    assert recorder(example, pred) == recorder(example, pred) == 1.0
    assert len(rows) == 1 and len(verdicts) == 1 and list(recorder.rows) == [0]
