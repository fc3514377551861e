"""SQuAD-style EM/F1 on gold answers of the shipped QA sets, the metric dispatch, and the LLM judge."""

import dspy
import pytest
from dspy.utils import DummyLM

from agentdistill.benchmarks.factual_grading import LLMJudge, exact_match, extract_factual_answer, f1_score
from agentdistill.benchmarks.loaders import load_benchmark
from agentdistill.benchmarks.metrics import answer_correct, answer_f1, task_family


@pytest.mark.parametrize("pred,gold,em", [
    ("coahuila, mexico", "Coahuila, Mexico", True),  # hotpotqa test
    ("Coahuila", "Coahuila, Mexico", False),
    ("The Cahiers du Cinéma.", "Cahiers du cinéma", True),  # 2wiki test
    ("Yes", "yes", True),
    ("no", "yes", False),
    ("  Denver ", "Denver", True),  # musique test
    ("President Richard Nixon", "President Richard Nixon", True),  # hotpotqa train
    ("Richard Nixon", "President Richard Nixon", False),
])
def test_exact_match(pred, gold, em):
    assert exact_match(pred, gold) is em


def test_f1():
    assert f1_score("Coahuila", "Coahuila, Mexico") == pytest.approx(2 / 3)
    assert f1_score("Richard Nixon", "President Richard Nixon") == pytest.approx(0.8)
    assert f1_score("no", "yes") == 0.0 and f1_score("yes", "yes") == 1.0
    assert f1_score("Paris", ["Lyon", "Paris"]) == 1.0


def test_extract_factual_answer():
    assert extract_factual_answer('final_answer("Denver")') == "Denver"
    assert extract_factual_answer("Thought: ...\nThe answer is Theuderic I.") == "Theuderic I"
    assert extract_factual_answer("Denver") == "Denver"


def test_answer_correct_dispatches_by_family():
    hot = load_benchmark("hotpotqa", limit=1)[0]
    math = load_benchmark("math500", limit=3)[2]
    assert task_family(hot) == "factual" and task_family(math) == "math"
    assert answer_correct(hot, dspy.Prediction(answer="coahuila mexico"))
    assert not answer_correct(hot, dspy.Prediction(answer="Mexico City"))
    assert answer_correct(math, dspy.Prediction(answer=r"so \boxed{14/3}"))
    assert answer_correct(math, dspy.Prediction(answer=4.666666667))
    assert not answer_correct(math, dspy.Prediction(answer=None))
    assert answer_f1(hot, dspy.Prediction(answer="Coahuila")) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="math or factual"):
        task_family(dspy.Example(question="q", answer="a"))


def test_llm_judge_uses_the_given_lm():
    lm = DummyLM([{"correct": "True"}, {"correct": "False"}])
    judge = LLMJudge(lm)
    assert judge("Where?", "Coahuila, Mexico", "in the Mexican state of Coahuila") is True
    assert judge("Where?", "Coahuila, Mexico", "Texas") is False
    assert judge("Where?", "Denver", "denver") is True  # exact match needs no LM call
