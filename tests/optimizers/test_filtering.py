"""The filter keeps exactly the right trajectories, grades them on the prediction the program returns at evaluation,
and its report counts every reason (a raising metric is a `metric_error`, a step that runs nothing a `void_turn`)."""

import logging

import dspy

from agentdistill.optimizers.filtering import filter_answers, filter_trajectories
from agentdistill.programs import ChainOfThoughtSolver, CodeAgent, Step, Trajectory
from tests.programs.scripted import scripted_lm

AGENT = CodeAgent("question -> answer", max_steps=3)


def metric(example, pred, trace=None):
    return str(pred.answer).strip() == str(example.answer)


def ex(answer):
    return dspy.Example(question="q", answer=answer).with_inputs("question")


def step(i, code="print(1)", error=None, parse_error=False, final=None):
    return Step(index=i, text=f"Thought: t\n```python\n{code}\n```", raw="", thought="t", code=code,
                observation="1", parse_error=parse_error, error=error, is_final=final is not None, final_answer=final)


def traj(answer="4", parse_errors=0, out_of_steps=False, errors=0, void=0):
    steps = [step(i, "undefined()", error="NameError") for i in range(errors)]
    steps += [step(len(steps) + i, None, parse_error=True) for i in range(parse_errors)]
    steps += [step(len(steps) + i, "# thinking, no code") for i in range(void)]
    finished = answer is not None and not out_of_steps
    steps.append(step(len(steps), "final_answer(x)", final=answer) if finished else step(len(steps)))
    t = Trajectory(example_id="e", instructions="I.", tools=[], task={"question": "q"}, steps=steps,
                   finished=finished, final_answer=answer if finished else None, out_of_steps=out_of_steps)
    return t.to_dict()  # as the store holds it


def test_filter_keeps_and_drops_exactly():
    pairs = [
        (ex("4"), traj("4")),                                  # kept
        (ex("4"), traj("4", errors=2)),                        # kept: execution errors stay
        (ex("4"), traj("5")),                                  # wrong answer
        (ex("4"), traj("4", parse_errors=1)),                  # parse failure (a reply without code: void too)
        (ex("4"), traj(None, out_of_steps=True)),              # out of steps, no answer
        (ex("4"), traj("5", parse_errors=2)),                  # three reasons
        (ex("4"), {"error": "teacher crashed"}),               # teacher error
        (ex("4"), traj("4", void=1)),                          # a step whose code runs nothing
    ]
    kept, report = filter_trajectories(pairs, metric, program=AGENT, ids=list("abcdefgh"))
    assert [p[1] for p in kept] == [pairs[0][1], pairs[1][1]]
    s = report.summary()
    assert s["total"] == 8 and s["kept"] == 2 and s["dropped"] == 6 and s["truncated"] == 0
    assert s["reasons"] == {"teacher_error": 1, "parse_error": 2, "void_turn": 3, "out_of_steps": 1,
                            "no_final_answer": 1, "metric_error": 0, "wrong_answer": 2}
    assert s["dropped_by"] == {"teacher_error": 1, "parse_error": 2, "void_turn": 1, "out_of_steps": 1,
                               "no_final_answer": 0, "metric_error": 0, "wrong_answer": 1}
    assert sum(s["dropped_by"].values()) == s["dropped"]
    assert s["kept_with_execution_errors"] == 1 and s["execution_error_steps"] == 2
    assert report.per_example["a"] == "kept" and report.per_example["f"] == ["parse_error", "void_turn",
                                                                            "wrong_answer"]
    # the teacher solved a, b, d, h (right answer despite the form): 4 of 8
    assert abs(report.success_rate - 4 / 8) < 1e-9


def test_the_metric_sees_the_prediction_of_evaluation():
    # a signature whose output is not called "answer", and a metric that reads the trajectory as evaluation gives it
    agent = CodeAgent("question -> solution", max_steps=2)
    lm, _ = scripted_lm(["Thought: t\n```python\nprint(6 * 7)\n```", "Thought: done\n```python\nfinal_answer(42)\n```"])
    agent.set_lm(lm)
    seen = []

    def grading(example, pred, trace=None):
        seen.append(pred)
        return pred.solution == example.solution and len(pred.trajectory.steps) == 2

    at_eval = agent(question="What is 6 * 7?")
    gold = dspy.Example(question="What is 6 * 7?", solution="42").with_inputs("question")
    assert grading(gold, at_eval)
    kept, report = filter_trajectories([(gold, at_eval.trajectory.to_dict())], grading, program=agent)
    assert report.kept == 1 and kept
    in_filter = seen[-1]
    assert set(in_filter.keys()) == set(at_eval.keys()) == {"solution", "trajectory"}
    assert isinstance(in_filter.trajectory, Trajectory) and in_filter.solution == at_eval.solution == "42"
    agent.close()


def test_a_raising_metric_is_a_metric_error_with_its_message(caplog):
    def bad_metric(example, pred, trace=None):
        raise ValueError("cannot grade 4")

    with caplog.at_level(logging.WARNING, logger="agentdistill.optimizers.filtering"):
        kept, report = filter_trajectories([(ex("4"), traj("4"))], bad_metric, program=AGENT, ids=["x"])
    assert kept == [] and report.reasons["metric_error"] == 1 and report.reasons["wrong_answer"] == 0
    assert report.metric_errors == {"x": "ValueError: cannot grade 4"}
    assert "cannot grade 4" in caplog.text and "metric_error" in caplog.text
    assert "the metric raised" in report.why_nothing_kept() and "cannot grade 4" in report.why_nothing_kept()
    assert report.success_rate == 0.0


def test_filter_answers_for_cot_grades_the_solvers_prediction():
    solver = ChainOfThoughtSolver("question -> solution")

    def grading(example, pred, trace=None):
        return pred.solution == example.solution

    def rec(answer, **kw):
        return {"task": {"question": "q"}, "reasoning": "r", "answer": answer, "raw": f"r\n\nAnswer: {answer}",
                "parse_error": None, **kw}

    gold = dspy.Example(question="q", solution="4").with_inputs("question")
    pairs = [(gold, rec("4")), (gold, rec("3")), (gold, {"error": "boom"}), (gold, rec(""))]
    kept, report = filter_answers(pairs, grading, program=solver)
    assert len(kept) == 1 and kept[0][1]["answer"] == "4"
    assert report.summary()["reasons"]["wrong_answer"] == 1
    assert report.reasons["teacher_error"] == 1 and report.reasons["no_final_answer"] == 1

    def raising(example, pred, trace=None):
        raise KeyError("answer")

    _, report = filter_answers([(gold, rec("4"))], raising, program=solver)
    assert report.reasons["metric_error"] == 1 and "KeyError" in report.metric_errors["0"]
