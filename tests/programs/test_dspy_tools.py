"""A CodeAgent under DSPy's and MLflow's own tools: dspy.Evaluate(save_as_json=...), mlflow.dspy.autolog."""

import json
import re

import dspy
import mlflow
import pytest
from scripted import ScriptedEngine

from agentdistill.programs import CodeAgent, Trajectory
from tests.tracking.store import mlflow_store  # noqa: F401  (a temporary MLflow sqlite store)


def adder(messages):
    """Step 1 prints the sum, step 2 calls final_answer: a two-step episode for any "What is A + B?"."""
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", messages[1]["content"]).groups())
    if messages[-2]["role"] == "user" and messages[-2]["content"].startswith("Observation:"):
        return " Done.\n```python\nfinal_answer(s)\n```"
    return f" Add them.\n```python\ns = {a} + {b}\nprint(s)\n```"


class Forever(ScriptedEngine):
    def complete(self, request):
        self.replies = [adder]
        return super().complete(request)


def devset():
    return [dspy.Example(question=f"What is {a} + 2?", answer=str(a + 2)).with_inputs("question") for a in (1, 5)]


def exact(example, pred, trace=None):
    return str(pred.answer) == example.answer


@pytest.fixture
def agent():
    agent = CodeAgent("question -> answer", max_steps=3)
    agent.set_lm(dspy.LM("scripted/agent", engine=Forever([]), cache=False))
    yield agent
    agent.close()


def test_evaluate_saves_predictions_with_their_trajectories_as_json(agent, tmp_path):
    path = tmp_path / "results.json"
    result = dspy.Evaluate(devset=devset(), metric=exact, num_threads=1, save_as_json=str(path))(agent)
    assert result.score == 100.0
    rows = json.loads(path.read_text())
    assert [(r["example_answer"], r["pred_answer"], r["exact"]) for r in rows] == [("3", "3", True), ("7", "7", True)]
    for row, (_, pred, _) in zip(rows, result.results):
        assert Trajectory.from_dict(row["trajectory"]) == pred.trajectory  # the whole episode, lossless
        assert row["trajectory"]["steps"][1]["is_final"]


def test_mlflow_autolog_traces_evaluates_and_logs_a_compile(agent, mlflow_store):  # noqa: F811
    mlflow.set_experiment("autolog")
    track_usage = dspy.settings.track_usage
    mlflow.dspy.autolog(log_compiles=True, log_evals=True)  # adds its callback and turns on usage tracking
    try:
        # DSPy's optimizers reset the student's LM (reset_copy): the compiled program runs on the configured one
        with mlflow.start_run() as run, dspy.context(lm=agent.step.lm):
            compiled = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=1, max_labeled_demos=0).compile(
                agent, trainset=devset())
            dspy.Evaluate(devset=devset(), metric=exact, num_threads=1)(compiled)
    finally:
        mlflow.dspy.autolog(disable=True)
        dspy.settings.configure(track_usage=track_usage)
    client = mlflow.MlflowClient()
    runs = client.search_runs([run.info.experiment_id])
    artifacts = {a.path for r in runs for a in client.list_artifacts(r.info.run_id)}
    assert {"best_model.json", "model.json", "result_table.json"} <= artifacts, artifacts
    assert max(r.data.metrics.get("eval", 0) for r in runs) == 100.0
    # the result table holds each prediction's trajectory as a record, not a Python repr
    evals = [r for r in runs if "result_table.json" in {a.path for a in client.list_artifacts(r.info.run_id)}]
    table = json.loads(open(client.download_artifacts(evals[0].info.run_id, "result_table.json")).read())
    column = table["columns"].index("pred_trajectory")
    assert Trajectory.from_dict(table["data"][0][column]).finished

    mlflow.flush_trace_async_logging()  # spans are exported in the background
    traces = mlflow.search_traces(experiment_ids=[run.info.experiment_id], return_type="list")
    assert traces, "the agent's calls were traced"
    root = next(s for s in traces[0].data.spans if s.parent_id is None)
    assert root.name == "CodeAgent.forward" and root.outputs["answer"] in ("3", "7")
    assert Trajectory.from_dict(root.outputs["trajectory"]).steps[1].is_final  # the episode as a record


def lookup(city: str) -> str:
    """The country of a city."""
    return {"Paris": "France"}.get(city, "unknown")


def test_autolog_traces_each_step_with_its_code_observation_tool_calls_and_votes(mlflow_store):  # noqa: F811
    from agentdistill.programs import SelfConsistency
    from scripted import scripted_lm

    step1 = "Thought: look it up.\n```python\nc = lookup('Paris')\nprint(c)\n```"
    step2 = "Thought: done.\n```python\nfinal_answer(c)\n```"
    agent = CodeAgent("question -> answer", tools=[lookup], max_steps=3)
    experiment = mlflow.set_experiment("traces")
    mlflow.dspy.autolog()
    try:
        lm, _ = scripted_lm([step1, step2])
        agent.set_lm(lm)
        assert agent(question="Where is Paris?").answer == "France"
        lm, _ = scripted_lm([step1] * 3 + [step2] * 3)
        agent.set_lm(lm)
        SelfConsistency(agent, n=3, temperature=0.7)(question="Where is Paris?")
    finally:
        mlflow.dspy.autolog(disable=True)
        agent.close()
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(experiment_ids=[experiment.experiment_id], return_type="list",
                                  order_by=["timestamp_ms ASC"])
    plain, sag = (t.data.spans for t in traces)
    steps = [s for s in plain if s.name.startswith("step ")]
    assert [s.name for s in steps] == ["step 1", "step 2"]
    assert steps[0].inputs["code"] == "c = lookup('Paris')\nprint(c)" and "France" in steps[0].outputs["observation"]
    assert steps[1].outputs["is_final"] and steps[1].outputs["final_answer"] == "France"
    [tool] = [s for s in plain if s.span_type == "TOOL"]
    assert tool.name == "lookup" and tool.parent_id == steps[0].span_id and tool.outputs == "France"
    assert tool.inputs == {"args": ["Paris"], "kwargs": {}}
    assert any(s.parent_id == steps[0].span_id and s.name.endswith("Predict.forward") for s in plain)
    sag_step = next(s for s in sag if s.name == "step 1")
    assert len(sag_step.attributes["candidates"]) == 3 and sag_step.attributes["agreement"] == 1.0
