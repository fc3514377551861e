"""The one DSPy internal this project relies on, kept here so a DSPy upgrade is checked in one place.

    from agentdistill.dspy_compat import adapter_message_call
    with adapter_message_call(lm, messages):
        outputs = lm(messages=messages, **kwargs)

Written for DSPy 3.4.1 (`WRITTEN_FOR`; tests/test_dspy_compat.py fails on another minor version until each shim
below is checked against it).

`adapter_message_call`: DSPy 3.4 deprecates `lm(messages=[...])` and warns on every such call, except the one an
adapter makes for its own formatted messages, which DSPy's adapters mark with the private context manager
`dspy.clients._deprecation.adapter_message_call` (3.4.1 has no public equivalent). Our adapters (programs/adapter.py)
and the agent's out-of-steps ask (programs/code_agent.py) are adapter calls in that sense: they render the
conversation themselves, so a user would otherwise see a deprecation warning per agent step that they cannot act
on. The public replacement, `lm(dspy.lm15.Request(...))` returning an `lm15.Response`, is DSPy 3.5's; moving to it
changes how every LM call is made and is its own change.

Other internals once used here have public replacements: a signature's default instructions are those of
`dspy.make_signature(fields)` (programs/task.py), and an engine class is imported from its "module:QualName" path
by `pkgutil.resolve_name` (lm/engine.py).
"""

from __future__ import annotations

import contextlib

WRITTEN_FOR = "3.4.1"

try:
    from dspy.clients._deprecation import adapter_message_call as _adapter_message_call
except ImportError:  # a DSPy without the 3.4 marker: calls still work, DSPy may warn about them
    _adapter_message_call = None


def adapter_message_call(lm, messages):
    """Mark `lm(messages=messages)` inside the block as an adapter's own call (no per-call deprecation warning).

    Only that exact (lm, messages) pair is marked: any other LM or message list in the block still warns.
    """
    if _adapter_message_call is None:
        return contextlib.nullcontext()
    return _adapter_message_call(lm, messages)
