"""The filter keeps exactly the right trajectories and its report counts every reason."""

import dspy

from agentdistill.optimizers.filtering import filter_answers, filter_trajectories


def metric(example, pred, trace=None):
    return str(pred.answer).strip() == str(example.answer)


def ex(answer):
    return dspy.Example(question="q", answer=answer).with_inputs("question")


def traj(answer="4", parse_errors=0, out_of_steps=False, finished=True, errors=0):
    steps = [{"thought": "t", "code": "x", "error": "NameError" if i < errors else None} for i in range(errors + 1)]
    return {"final_answer": answer, "parse_errors": parse_errors, "out_of_steps": out_of_steps,
            "finished": finished, "steps": steps}


def test_filter_keeps_and_drops_exactly():
    pairs = [
        (ex("4"), traj("4")),                                  # kept
        (ex("4"), traj("4", errors=2)),                        # kept: execution errors stay
        (ex("4"), traj("5")),                                  # wrong answer
        (ex("4"), traj("4", parse_errors=1)),                  # parse failure
        (ex("4"), traj(None, out_of_steps=True, finished=False)),  # out of steps, no answer
        (ex("4"), traj("5", parse_errors=2)),                  # two reasons
        (ex("4"), {"error": "teacher crashed"}),               # teacher error
    ]
    kept, report = filter_trajectories(pairs, metric, ids=list("abcdefg"))
    assert [p[1] for p in kept] == [pairs[0][1], pairs[1][1]]
    s = report.summary()
    assert s["total"] == 7 and s["kept"] == 2 and s["dropped"] == 5
    assert s["reasons"] == {"teacher_error": 1, "parse_error": 2, "out_of_steps": 1,
                            "no_final_answer": 1, "wrong_answer": 2}
    assert s["dropped_by"] == {"teacher_error": 1, "parse_error": 2, "out_of_steps": 1,
                               "no_final_answer": 0, "wrong_answer": 1}
    assert sum(s["dropped_by"].values()) == s["dropped"]
    assert s["kept_with_execution_errors"] == 1 and s["execution_error_steps"] == 2
    assert report.per_example["a"] == "kept" and report.per_example["f"] == ["parse_error", "wrong_answer"]
    # the teacher solved a, b, d (right answer despite parse error): 3 of 7
    assert abs(report.success_rate - 3 / 7) < 1e-9


def test_metric_that_raises_counts_as_wrong():
    def bad_metric(example, pred, trace=None):
        raise ValueError("cannot grade")

    kept, report = filter_trajectories([(ex("4"), traj("4"))], bad_metric)
    assert kept == [] and report.reasons["wrong_answer"] == 1


def test_filter_answers_for_cot():
    pairs = [(ex("4"), {"reasoning": "r", "answer": "4"}), (ex("4"), {"reasoning": "r", "answer": "3"}),
             (ex("4"), {"error": "boom"}), (ex("4"), {"reasoning": "r", "answer": ""})]
    kept, report = filter_answers(pairs, metric)
    assert len(kept) == 1 and kept[0][1]["answer"] == "4"
    assert report.summary()["reasons"]["wrong_answer"] == 1
    assert report.reasons["teacher_error"] == 1 and report.reasons["no_final_answer"] == 1
