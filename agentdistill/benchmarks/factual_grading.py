"""Factual (multi-hop QA) grading: SQuAD-style normalised exact match and token F1, plus an optional LLM judge.

    from agentdistill.benchmarks.factual_grading import exact_match, f1_score, LLMJudge
    exact_match("The Eiffel Tower.", "eiffel tower")       # True
    f1_score("Coahuila, Mexico", "Coahuila")               # 0.667
    judge = LLMJudge(dspy.LM("openai/gpt-4o-mini"))         # any dspy.LM; reported as "judge_accuracy/<benchmark>"
    judge(question, gold, predicted)                        # -> bool

EM/F1 are the offline metrics. The judge is never mixed into them: evaluation logs it under its own name.
"""

from __future__ import annotations

import collections
import contextlib
import re
import string

import dspy

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text) -> str:
    """Lower case, drop punctuation and articles (a, an, the), collapse white space (SQuAD v1.1)."""
    s = str(text).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _golds(gold) -> list[str]:
    return [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]


def exact_match(prediction, gold) -> bool:
    """Normalised exact match against the gold answer (or any of a list of aliases)."""
    p = normalize_answer(prediction)
    return any(p == normalize_answer(g) for g in _golds(gold))


def f1_score(prediction, gold) -> float:
    """Token-level F1 between normalised answers (max over aliases). yes/no/noanswer must match exactly."""
    best = 0.0
    p_norm = normalize_answer(prediction)
    for g in _golds(gold):
        g_norm = normalize_answer(g)
        if p_norm in ("yes", "no", "noanswer") or g_norm in ("yes", "no", "noanswer"):
            best = max(best, float(p_norm == g_norm))  # a "yes" must not earn partial credit against "no"
            continue
        p_tokens, g_tokens = p_norm.split(), g_norm.split()
        common = collections.Counter(p_tokens) & collections.Counter(g_tokens)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(p_tokens), same / len(g_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def extract_factual_answer(output) -> str:
    """The short answer in a model output: final_answer("...") / "the answer is ..." / "Answer: ..." / the text."""
    if output is None:
        return ""
    if isinstance(output, (list, tuple)):
        return ", ".join(map(str, output))
    text = str(output).strip()
    m = None
    for m in re.finditer(r"final_answer\s*\(\s*(['\"])(.*?)\1\s*\)", text, re.DOTALL):
        pass
    if m is not None:
        return m.group(2).strip()
    m = re.search(r"(?is)(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(.+)", text) or re.search(
        r"(?im)^\s*answer\s*:\s*(.+)$", text)
    if m is not None:
        return m.group(1).strip().split("\n")[0].strip().rstrip(".")
    return text


class JudgeAnswer(dspy.Signature):
    """Decide whether the predicted answer means the same as the gold answer for the question.
    Minor differences in wording, formatting or extra detail are fine; a different entity, number or date is not."""

    question: str = dspy.InputField()
    gold_answer: str = dspy.InputField()
    predicted_answer: str = dspy.InputField()
    correct: bool = dspy.OutputField(desc="True if the predicted answer is correct")


class LLMJudge(dspy.Module):
    """An LLM judge of answer correctness (the paper's factual metric); any `dspy.LM`.

    Example:
        judge = LLMJudge(dspy.LM("openai/gpt-4o-mini"))
        judge("Who wrote Hamlet?", "William Shakespeare", "Shakespeare")   # True
    """

    def __init__(self, lm: dspy.LM | None = None):
        super().__init__()
        self.lm = lm
        self.judge = dspy.Predict(JudgeAnswer)

    def forward(self, question: str, gold_answer: str, predicted_answer: str) -> bool:
        if exact_match(predicted_answer, gold_answer):  # no need to ask
            return True
        with dspy.context(lm=self.lm) if self.lm is not None else contextlib.nullcontext():
            out = self.judge(question=question, gold_answer=str(gold_answer), predicted_answer=str(predicted_answer))
        return bool(out.correct)

