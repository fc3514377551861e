"""Math grading: pull the final answer out of a model's output and judge it against the gold answer.

Plays the role of Qwen2.5-Math's `math_equal` in the paper (MATH-500, GSM-Hard, AIME, OlymMATH), written
for this project without latex2sympy/antlr: LaTeX is rewritten into a small whitelisted expression language
and parsed by sympy.

    from agentdistill.benchmarks.math_grading import extract_math_answer, math_equal
    math_equal(extract_math_answer("so the answer is \\boxed{\\dfrac{14}{3}}."), "\\frac{14}{3}")   # True

Order of checks (cheap first): normalised strings -> plain numbers (relative tolerance 1e-4, the GSM-Hard
floats) -> structures split here (tuples, sets / answer lists, matrices, equations) -> symbolic leaves
(sympy: simplify(a - b) == 0, then the numeric value - within the tolerance when a side has decimals, exactly
when both are exact; intervals and unions). Model output is hostile: the sympy part runs in a helper process
with a wall-clock timeout (`python -m agentdistill.benchmarks.math_grading --worker`), and only whitelisted
names reach sympy's parser.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import select
import subprocess
import sys
import threading

SYMPY_TIMEOUT_S = 3.0  # per symbolic comparison; a hostile "9^9^9^9" must not hang an evaluation
REL_TOL = 1e-4  # Qwen2.5-Math's tolerance; matters for GSM-Hard's float answers

# ----------------------------------------------------------------------------- extraction


def extract_math_answer(output) -> str:
    """The final answer in a model output, as a string.

    Accepts what programs return: numbers, lists/tuples (an agent's `final_answer([1, 2])`), or text with
    `\\boxed{...}`, `final_answer(...)`, "the answer is ...", "Answer: ..."; else the last number in the text.
    """
    if output is None:
        return ""
    if isinstance(output, bool):
        return str(output)
    if isinstance(output, (int, float)):
        return _format_number(output)
    if isinstance(output, (list, tuple)):
        return "(" + ", ".join(extract_math_answer(x) for x in output) + ")"
    if isinstance(output, dict):
        return str(output)
    text = str(output).strip()
    if "boxed" in text or "\\fbox" in text:
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
    m = None
    for m in re.finditer(r"final_answer\s*\(", text):
        pass
    if m is not None:
        start = m.end() - 1  # final_answer("(3, 4]"): the brackets in the string literal do not count
        arg = _balanced(text, start, "(", ")", python=True) or _balanced(text, start, "(", ")")
        if arg is not None:
            try:  # a Python literal: final_answer(42), final_answer("\\frac{1}{2}"), final_answer([1, 2])
                return extract_math_answer(ast.literal_eval(arg))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return arg.strip()
    m = re.search(r"(?is)(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(.+)", text)
    if m is None:
        m = re.search(r"(?im)^\s*answer\s*:\s*(.+)$", text)
    if m is not None:
        ans = m.group(1).strip().split("\n")[0].strip()
        ans = re.sub(r"^\$+|\$+$", "", ans.rstrip(".").strip()).strip()
        if ans:
            return ans
    if _is_bare_answer(text):  # "14/3", "x^5 - x^4 + x^3 - x^2 + x - 1", a pmatrix, "5x - 7y + 11z + 4 = 0"
        return text
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+", text)
    return numbers[-1].replace(",", "") if numbers else text


# Words that are math, not prose, in an answer written without LaTeX ("3*sqrt(13)", "(-infinity, 2) U (3, oo)").
_MATH_WORDS = {"sqrt", "pi", "oo", "inf", "infty", "infinity", "log", "ln", "exp", "sin", "cos", "tan", "sec", "csc",
               "cot", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "binomial", "factorial", "abs", "root"}


def _is_bare_answer(text: str) -> bool:
    """Is the whole text the answer, with no prose around it?

    Yes for one line of math: no word (three or more letters, lowercase after the first) outside LaTeX commands and
    \\text{} but function names and units - "14/3", "x^5 - x^4 + x^3 - x^2 + x - 1", a pmatrix, "864 inches^2".
    (The rule was "at most 40 characters and 4 words", which cut long answers to their last number.) A sentence
    ("Thought: 4 years", "so 5 apples") is not: its last number is taken, as in Qwen2.5-Math's extraction.
    """
    if "=" in text and not re.search(r"[A-Za-z]", text):
        return False  # "218983*30 = 6569490": a computation shown, the result is its last number
    if "\n" in text or len(text) > 400:
        return False
    t = re.sub(r"\\(?:text[a-z]*|mbox|mathrm|operatorname|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    return not any(w.lower() not in _MATH_WORDS and not _UNIT_WORD.fullmatch(w)
                   for w in re.findall(r"[A-Za-z][a-z]{2,}", t))


def _format_number(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x) if isinstance(x, float) else str(x)


def _balanced(text: str, start: int, open_ch: str, close_ch: str, python: bool = False) -> str | None:
    """Content between text[start] == open_ch and its matching close_ch (None when unbalanced).

    python=True: brackets inside Python string literals ('...', "...") do not count.
    """
    depth, quote, i = 0, None, start - 1
    while i + 1 < len(text):
        i += 1
        if quote is not None:
            if text[i] == "\\":
                i += 1  # an escaped character, e.g. \' or \\
            elif text[i] == quote:
                quote = None
            continue
        if python and text[i] in "'\"":
            quote = text[i]
        elif text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])(\s*)")  # the command (not a longer one, e.g. \boxedx), spaces


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...}, braces balanced (\\boxed{\\frac{1}{2}}), stripped; or the
    token of a brace-less "\\boxed 5". None without one, or when its braces do not close.

    The one extraction of a boxed answer: math grading and the CoT parser (programs/parsing.py) both use it.
    """
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    box = boxes[-1]
    if text[box.end() : box.end() + 1] == "{":
        inner = _balanced(text, box.end(), "{", "}")
        return inner.strip() if inner is not None else None
    token = re.match(r"[^\s$]+", text[box.end() :]) if box.group(1) else None  # "\boxed 5"
    return token.group(0) if token else None


# ----------------------------------------------------------------------------- normalisation

# Unit words that follow a number in MATH / GSM answers ("80 cents", "864 inches^2").
_UNITS = (
    "units?|square units?|sq units?|cents?|dollars?|inches|inch|feet|foot|ft|yards?|miles?|meters?|metres?|"
    "centimeters?|cm|mm|km|m|kg|grams?|g|pounds?|lbs?|ounces?|oz|seconds?|sec|minutes?|min|hours?|hrs?|days?|"
    "weeks?|months?|years?|degrees?|mph|people|students?|points?|cups?|gallons?|liters?|litres?"
)
_UNIT_WORD = re.compile(_UNITS, re.IGNORECASE)
_UNIT_RE = re.compile(rf"^(.*?\d\}}?)\s*(?:\\,)?\s*(?:{_UNITS})(?:\s*\^\s*\{{?[23]\}}?|[23])?$", re.IGNORECASE)


def normalize_math_answer(answer) -> str:
    """A canonical string for an answer: LaTeX noise, units, degrees, dollars, thousands separators removed."""
    s = str(answer).strip().replace("\n", " ")
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = s.strip("$").strip().rstrip(".").strip()  # "7\text{ hours}.": the period must not hide the unit
    s = re.sub(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))", ",", s)  # "11,\! 111": a thousands separator, spaced or not
    s = re.sub(r"(?<!\\)\\[!,;:]", "", s)  # thin spaces \! \, \; \: (not after a row break \\)
    s = re.sub(r"(?<!\\)\\ |~", " ", s).replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("bmatrix", "pmatrix")
    s = brace_arguments(s)
    s = re.sub(r"\\left\b|\\right\b|\\big\b|\\Big\b", "", s)
    s = s.replace("\\{", "{").replace("\\}", "}").replace("\\$", " ").replace("$", " ")  # \approx\$0.67: no "\approx0"
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°", "", s)  # degrees
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("\\leq", "\\le").replace("\\geq", "\\ge").replace("\\neq", "\\ne")
    # A trailing \text{...}/\mbox{...} after a value is a unit ("80\text{ cents}"); alone it is the answer.
    stripped = re.sub(r"\\(?:text|textnormal|mbox|mathrm)\s*\{[^{}]*\}\s*(\^\s*\{?[23]\}?)?$", "", s).strip()
    if stripped and stripped != s and re.search(r"[\d}]$", stripped):
        s = stripped
    s = re.sub(r"\\(?:text|textnormal|textbf|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}", r"\1", s)
    m = _UNIT_RE.match(s.strip())
    if m:
        s = m.group(1)
    s = re.sub(r"^\s*[a-zA-Z]\s*(?:=|\\in)\s*(?=\S)", "", s) if s.count("=") <= 1 else s  # "x = 5", "x \in [1,2]"
    s = s.replace("infinity", "\\infty").replace("\\inf ", "\\infty ")
    s = s.replace("\\emptyset", "{}").replace("\\varnothing", "{}")
    s = s.strip().rstrip(".").strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):  # 10,080 -> 10080; "81, 256" (spaced) is two answers
        s = s.replace(",", "")
    # Spaces go, except where they separate names: "\cos x" is not "\cosx", nor "30p sqrt(p)" "30psqrt(p)".
    s = re.sub(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z0-9])|(?<=[a-zA-Z])\s+(?=[a-zA-Z])", "\\1\x00", s)
    s = re.sub(r"\s+", "", s).replace("\x00", " ")
    s = re.sub(r"^([0-9A-Za-z]+)_\{?\d+\}?$", r"\1", s)  # base subscript: 861_{12} -> 861
    s = re.sub(r"^(-?\d+)\\frac\{(\d+)\}\{(\d+)\}$", r"\1+\\frac{\2}{\3}", s)  # mixed number 2\frac12 = 5/2
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)  # .6 -> 0.6
    if s.count("\\pm") == 1 and "," not in s:  # 1\pm\sqrt{19}: both roots, as an answer list
        s = s.replace("\\pm", "+") + "," + s.replace("\\pm", "-")
    if re.fullmatch(r"\(\w+\)", s):  # "(E)" -> "E"
        s = s[1:-1]
    return s


def brace_arguments(s: str) -> str:
    """Braces around one-token arguments of \\frac (\\dfrac, \\tfrac), \\binom and \\sqrt, as TeX reads them.

    \\frac12 -> \\frac{1}{2}, \\frac\\pi 2 -> \\frac{\\pi}{2}, \\frac1{72}, \\sqrt3 -> \\sqrt{3}, \\sqrt[3]2: both the
    string comparison and the rewriting into sympy then see one spelling. A token is a digit, a letter or a
    command; anything else (a missing argument) is left for latex_to_expr to refuse.
    """
    out, i = [], 0
    for m in re.finditer(r"\\([dt]?frac|binom|sqrt)(?![a-zA-Z])", s):
        if m.start() < i:
            continue  # inside an argument already copied (and rewritten) below
        out.append(s[i : m.end()])
        j = m.end()
        if m.group(1) == "sqrt":
            k = _skip_spaces(s, j)
            if k < len(s) and s[k] == "[":
                index = _balanced(s, k, "[", "]")
                if index is not None:
                    out.append(f"[{brace_arguments(index)}]")
                    j = k + len(index) + 2
        for _ in range(1 if m.group(1) == "sqrt" else 2):
            k = _skip_spaces(s, j)
            if s[k : k + 1] == "{":
                arg = _balanced(s, k, "{", "}")
                if arg is None:
                    break
                out.append("{" + brace_arguments(arg) + "}")
                j = k + len(arg) + 2
                continue
            token = re.match(r"\\[a-zA-Z]+|[0-9a-zA-Z]", s[k:])
            if token is None:
                break
            out.append("{" + token.group(0) + "}")
            j = k + token.end()
        i = j
    out.append(s[i:])
    return "".join(out)


def _skip_spaces(s: str, j: int) -> int:
    while j < len(s) and s[j] == " ":
        j += 1
    return j


def _has_percent(s) -> bool:
    return "%" in str(s)


def _to_float(s: str) -> float | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def numeric_close(a: float, b: float, rel_tol: float = REL_TOL) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)


# ----------------------------------------------------------------------------- structure


def _split_top(s: str, sep: str) -> list[str]:
    """Split at `sep` outside any (), [], {}."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _outer(s: str) -> tuple[str, str, str] | None:
    """(open, inner, close) when one bracket pair spans the whole string."""
    if len(s) < 2 or s[0] not in "([{" or s[-1] not in ")]}":
        return None
    depth = 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return None
    return s[0], s[1:-1], s[-1]


def _matrix_cells(s: str) -> list[list[str]] | None:
    m = re.fullmatch(r"\\begin\{pmatrix\}(.*)\\end\{pmatrix\}", s)
    if not m:
        return None
    rows = [r for r in m.group(1).split("\\\\") if r.strip()]
    return [r.split("&") for r in rows]


def _expand_pm(items: list[str]) -> list[str]:
    """An item "1\\pm\\sqrt{5}" of an answer list stands for two answers (as a whole answer, see normalize)."""
    out = []
    for x in items:
        out += [x.replace("\\pm", "+"), x.replace("\\pm", "-")] if x.count("\\pm") == 1 else [x]
    return out


def _unordered_equal(ps: list[str], rs: list[str], **kw) -> bool:
    ps, rs = _expand_pm(ps), _expand_pm(rs)
    if len(ps) != len(rs):
        return False
    left = list(ps)
    for r in rs:
        for i, p in enumerate(left):
            if _equal(p, r, **kw):
                del left[i]
                break
        else:
            return False
    return True


def math_equal(prediction, reference, *, timeout: float | None = SYMPY_TIMEOUT_S, rel_tol: float = REL_TOL) -> bool:
    """Is `prediction` mathematically the same answer as `reference`?

    Both are answer strings (or numbers); use `extract_math_answer` first on free-form model output.
    `timeout` bounds each sympy comparison in seconds (None: in-process, no limit - trusted input only).
    """
    if prediction is None or reference is None:
        return False
    pct = _has_percent(prediction) or _has_percent(reference)
    p = normalize_math_answer(_format_number(prediction) if isinstance(prediction, (int, float)) else prediction)
    r = normalize_math_answer(_format_number(reference) if isinstance(reference, (int, float)) else reference)
    if not p:
        return False
    return _equal(p, r, timeout=timeout, rel_tol=rel_tol, pct=pct)


def _equal(p: str, r: str, *, timeout, rel_tol, pct=False) -> bool:
    kw = dict(timeout=timeout, rel_tol=rel_tol, pct=pct)
    if p.lower() == r.lower():
        return True
    if r.count("\\approx") == 1 and "\\approx" not in p:  # "\frac23\approx0.67": the exact value or its rounding
        return any(_equal(p, side, **kw) for side in r.split("\\approx"))
    pf, rf = _to_float(p), _to_float(r)
    if pf is not None and rf is not None:
        candidates = [rf, rf / 100, rf * 100] if pct else [rf]
        return any(numeric_close(pf, c, rel_tol) for c in candidates)
    if re.fullmatch(r"[A-Za-z]+(?:\([A-Za-z]\))?", r) and not re.search(r"\\|\d", p) and len(r) > 1:
        return p.lower().strip("()") == r.lower().strip("()")  # a word answer ("even", "Navin")
    # Several answers: "(-4,27);(2,15)" or "1,2,3" (order-free, as MATH's "enter all solutions").
    for sep in (";", ","):
        rs, ps = _split_top(r, sep), _split_top(p, sep)
        if len(rs) > 1 or len(ps) > 1:
            if sep == "," and (_outer(r) or _outer(p)) and not (len(rs) > 1 and len(ps) > 1):
                o = _outer(p) if len(rs) > 1 else _outer(r)  # bare list vs bracketed list (or set) of the same items
                if o:
                    inner = _split_top(o[1], ",")
                    return _unordered_equal(inner, rs, **kw) if len(rs) > 1 else _unordered_equal(ps, inner, **kw)
                return False
            return _unordered_equal(ps, rs, **kw)
    op, orr = _outer(p), _outer(r)
    if op and orr:
        if op[0] == "{" and orr[0] == "{":  # sets
            return _unordered_equal(_split_top(op[1], ","), _split_top(orr[1], ","), **kw)
        if op[0] == orr[0] and op[2] == orr[2] and op[0] != "{":
            pi, ri = _split_top(op[1], ","), _split_top(orr[1], ",")
            if len(pi) > 1 or len(ri) > 1:  # tuples / points, ordered
                return len(pi) == len(ri) and all(_equal(a, b, **kw) for a, b in zip(pi, ri))
    pm, rm = _matrix_cells(p), _matrix_cells(r)
    if pm is not None or rm is not None:
        if pm is None and op and op[0] in "([":  # a vector given as a tuple
            pm = [[c] for c in _split_top(op[1], ",")]
        if rm is None and orr and orr[0] in "([":
            rm = [[c] for c in _split_top(orr[1], ",")]
        if rm is None or pm is None or [len(x) for x in pm] != [len(x) for x in rm]:
            return False
        return all(_equal(a, b, **kw) for pr, rr in zip(pm, rm) for a, b in zip(pr, rr))
    if p.count("=") == 1 and r.count("=") == 1:  # equations: same solution set up to sign
        pl, pr_ = p.split("=")
        rl, rr_ = r.split("=")
        pd, rd = f"({pl})-({pr_})", f"({rl})-({rr_})"
        return _symbolic(pd, rd, timeout) or _symbolic(f"-({pd})", rd, timeout)
    return _symbolic(p, r, timeout)


# ----------------------------------------------------------------------------- LaTeX -> sympy (worker side)

_FUNCS = {"sqrt", "pi", "oo", "I", "E", "log", "ln", "exp", "sin", "cos", "tan", "sec", "csc", "cot", "asin",
          "acos", "atan", "binomial", "factorial", "Abs", "root"}
_COMMANDS = {"\\pi": " pi ", "\\infty": " oo ", "\\cdot": "*", "\\times": "*", "\\div": "/", "\\ln": " log ",
             "\\log": " log ", "\\exp": " exp ", "\\sin": " sin ", "\\cos": " cos ", "\\tan": " tan ",
             "\\sec": " sec ", "\\csc": " csc ", "\\cot": " cot ", "\\arcsin": " asin ", "\\arccos": " acos ",
             "\\arctan": " atan ", "\\le": "<=", "\\ge": ">=", "\\lt": "<", "\\gt": ">", "\\cup": " U "}


def latex_to_expr(s: str) -> str:
    """Rewrite a LaTeX (or Python-style) math answer into sympy-parsable text; ValueError if it cannot."""
    s = brace_arguments(s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    for _ in range(50):  # innermost-last rewriting of \frac{a}{b}, \sqrt[n]{a}, \sqrt{a}, \binom{a}{b}
        m = re.search(r"\\(frac|binom)\{", s)
        n = re.search(r"\\sqrt(\[[^\]]*\])?\{", s)
        if m is None and n is None:
            break
        if m is not None and (n is None or m.start() < n.start()):
            a = _balanced(s, m.end() - 1, "{", "}")
            if a is None:
                raise ValueError("unbalanced braces")
            j = m.end() + len(a) + 1
            if j >= len(s) or s[j] != "{":
                raise ValueError("\\frac needs two arguments")
            b = _balanced(s, j, "{", "}")
            if b is None:
                raise ValueError("unbalanced braces")
            # a space before a function name (binomial, sqrt): "30p\sqrt{p}" must not become the name "psqrt"
            rep = f"(({a})/({b}))" if m.group(1) == "frac" else f" binomial({a},{b})"
            s = s[: m.start()] + rep + s[j + len(b) + 2 :]
        else:
            a = _balanced(s, n.end() - 1, "{", "}")
            if a is None:
                raise ValueError("unbalanced braces")
            idx = n.group(1)
            rep = f"(({a})**(1/({idx[1:-1]})))" if idx else f" sqrt({a})"
            s = s[: n.start()] + rep + s[n.end() + len(a) + 1 :]
    for cmd, rep in sorted(_COMMANDS.items(), key=lambda kv: -len(kv[0])):
        s = re.sub(re.escape(cmd) + r"(?![a-zA-Z])", rep, s)
    if "\\" in s:
        raise ValueError(f"unsupported LaTeX command in {s!r}")
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    return s


def _check_safe(expr: str) -> None:
    """Only arithmetic, single-letter symbols and known function names may reach sympy's parser (eval)."""
    if len(expr) > 400 or re.search(r"[^0-9A-Za-z+\-*/().,<=>\[\]\s]", expr) or re.search(r"[A-Za-z]\s*\.", expr):
        raise ValueError("not a plain math expression")
    for name in re.findall(r"[A-Za-z]+", expr):
        if name not in _FUNCS and name != "U" and not re.fullmatch(r"[a-zA-Z]{1,3}", name):
            raise ValueError(f"name {name!r} not allowed")


def to_sympy(text: str):
    """sympy object for an answer leaf: a number/expression, or an interval/union ("[1,2)\\cup(3,oo)")."""
    import sympy
    from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    expr = latex_to_expr(text)
    _check_safe(expr)
    local = {"pi": sympy.pi, "oo": sympy.oo, "I": sympy.I, "i": sympy.I, "E": sympy.E, "e": sympy.E,
             "ln": sympy.log, "sqrt": sympy.sqrt, "root": sympy.root}
    transforms = standard_transformations + (implicit_multiplication_application,)

    def parse(t: str):
        return parse_expr(t, local_dict=dict(local), transformations=transforms, evaluate=True)

    pieces = [x.strip() for x in re.split(r"(?<=[\])])\s*U\s*(?=[(\[])", expr)]
    intervals = []
    for piece in pieces:
        m = re.fullmatch(r"([(\[])(.*)([)\]])", piece)
        inner = _split_top(m.group(2), ",") if m else []
        if not m or len(inner) != 2:
            intervals = None
            break
        lo, hi = parse(inner[0]), parse(inner[1])
        intervals.append(sympy.Interval(lo, hi, left_open=m.group(1) == "(", right_open=m.group(3) == ")"))
    if intervals:
        return sympy.Union(*intervals) if len(intervals) > 1 else intervals[0]
    if len(pieces) > 1:
        raise ValueError("union of non-intervals")
    return parse(expr)


def symbolic_equal(a: str, b: str, rel_tol: float = REL_TOL) -> bool:
    """sympy equivalence of two answer leaves (run inside the worker process)."""
    import sympy

    try:
        ea, eb = to_sympy(a), to_sympy(b)
    except Exception:
        return False
    try:
        if ea == eb:
            return True
    except Exception:
        pass
    if isinstance(ea, sympy.Set) or isinstance(eb, sympy.Set):
        try:
            return bool(sympy.Eq(ea, eb)) if isinstance(ea, sympy.Set) and isinstance(eb, sympy.Set) else False
        except Exception:
            return False
    try:
        diff = sympy.simplify(ea - eb)
        if diff == 0:
            return True
    except Exception:
        diff = None
    try:
        if not (ea.atoms(sympy.Float) or eb.atoms(sympy.Float)):
            # Both exact: the tolerance is for decimals ("4.6667" for 14/3). 448/15626 is not 448/15625 however
            # close, nor 1/2^99 the tiny 1/2^98, nor 2^2008-3 the huge 2^2008-2. Only a difference simplify could not
            # reduce (nested radicals) is evaluated, to 50 digits; chop=True makes a difference with no digit 0.
            diff = ea - eb if diff is None else diff
            return False if diff.is_Rational else bool(sympy.N(diff, 50, chop=True) == 0)
        va, vb = complex(sympy.N(ea)), complex(sympy.N(eb))
        return cmath_close(va, vb, rel_tol)
    except Exception:
        return False


def cmath_close(a: complex, b: complex, rel_tol: float) -> bool:
    if not all(math.isfinite(x) for x in (a.real, a.imag, b.real, b.imag)):
        return False  # 2^{4181} overflows a float: only the exact check may call it equal
    return abs(a - b) <= max(rel_tol * max(abs(a), abs(b)), 1e-9)


# ----------------------------------------------------------------------------- the timeout worker


class _Worker:
    """One helper process (per host process) that runs `symbolic_equal`; killed and restarted on timeout."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentdistill.benchmarks.math_grading", "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def equal(self, a: str, b: str, timeout: float) -> bool:
        with self.lock:
            for attempt in range(2):  # a worker that died (e.g. memory) is restarted once
                fresh = self.proc is None or self.proc.poll() is not None
                if fresh:
                    self._start()
                try:
                    self.proc.stdin.write(json.dumps([a, b]) + "\n")
                    self.proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    self._kill()
                    continue
                # a fresh worker first imports python + sympy (~1-2 s; more on a loaded machine)
                ready, _, _ = select.select([self.proc.stdout], [], [], timeout + (20.0 if fresh else 0.0))
                if not ready:
                    self._kill()  # sympy is stuck: the comparison counts as "not equal"
                    return False
                line = self.proc.stdout.readline()
                if line:
                    return line.strip() == "1"
                self._kill()
            return False

    def close(self):
        with self.lock:
            self._kill()


_worker = _Worker()


def _symbolic(a: str, b: str, timeout: float | None) -> bool:
    if timeout is None:
        return symbolic_equal(a, b)
    return _worker.equal(a, b, timeout)


def _worker_main() -> None:
    for line in sys.stdin:
        a, b = json.loads(line)
        try:
            ok = symbolic_equal(a, b)
        except Exception:
            ok = False
        sys.stdout.write("1\n" if ok else "0\n")
        sys.stdout.flush()


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker_main()
