"""A program's task as its signature defines it: the inputs it is called with, and the instructions it was given.

    task_from(signature, {"question": "2 + 2?"}, "CodeAgent")   # {"question": "2 + 2?"}; ValueError naming the fix
    own_instructions(dspy.Signature("question -> answer"))     # None: DSPy's generated default, not the user's

`CodeAgent` and `ChainOfThoughtSolver` both read their task this way (their `task_from` methods call this one).
"""

from __future__ import annotations

from typing import Any

import dspy


def task_from(signature, inputs: dict[str, Any], program: str, also: str = "") -> dict[str, Any]:
    """The signature's input fields from `inputs`, in the signature's order.

    Args:
        signature: the program's dspy.Signature.
        inputs: the keyword arguments the program was called with (its own keywords already taken out).
        program: the program's name, for the error.
        also: the program's own keywords, for the error (e.g. "first_thought_prefix=, example_id=").

    Raises:
        ValueError: an input field is missing or an input is not one of the signature's.
    """
    expected = list(signature.input_fields)
    missing = [k for k in expected if k not in inputs]
    unknown = [k for k in inputs if k not in expected]
    if missing or unknown:
        plus = f" (plus {also})" if also else ""
        raise ValueError(f"{program} with signature {signature.signature!r} takes the inputs {expected}{plus}; "
                         f"missing {missing}, unknown {unknown}")
    return {k: inputs[k] for k in expected}


def own_instructions(signature) -> str | None:
    """The instructions written for `signature` (its docstring or `with_instructions`), or None when it only has
    the text DSPy generates for a signature without any ("Given the fields `question`, produce the fields ...")."""
    text = (signature.instructions or "").strip()
    # the generated text depends only on the field names: a signature of the same fields without instructions has it
    generated = dspy.make_signature(dict(signature.fields)).instructions
    return None if not text or text == generated else text
