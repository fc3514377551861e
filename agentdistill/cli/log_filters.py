"""One line, not thousands: DSPy logs "LM response was truncated" for every reply that reaches max_tokens.

An agent's step limit makes that routine (the step is recorded with its token count either way), so a CPU run
printed it hundreds of times between its progress lines. The CLI lets the first one through, counts the rest and
says how many at the end:

    with collapsed_truncation_warnings():
        run()          # -> "LM response was truncated ... (further truncations are counted, not printed)"
                       #    ... "37 more LM replies reached max_tokens (not printed)"
"""

from __future__ import annotations

import contextlib
import logging
import sys

LOGGER = "dspy.clients.lm"


class TruncationFilter(logging.Filter):
    """Passes the first truncation warning (with a note), drops and counts the others; any other record passes."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "response was truncated" not in record.getMessage():
            return True
        self.seen += 1
        if self.seen > 1:
            return False
        record.msg, record.args = (f"{record.getMessage()} (further truncations are counted, not printed: each "
                                   "step's token count is in its trajectory)"), None
        return True


@contextlib.contextmanager
def collapsed_truncation_warnings(stream=None):
    logger = logging.getLogger(LOGGER)
    flt = TruncationFilter()
    logger.addFilter(flt)
    try:
        yield flt
    finally:
        logger.removeFilter(flt)
        if flt.seen > 1:
            print(f"{flt.seen - 1} more LM replies reached max_tokens (not printed)", file=stream or sys.stderr)
