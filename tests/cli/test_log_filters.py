"""DSPy's per-reply truncation warning: the first is printed, the rest counted (a CPU run printed hundreds)."""

import io
import logging

from agentdistill.cli.log_filters import LOGGER, collapsed_truncation_warnings


def test_truncation_warnings_collapse_to_one_line_and_a_count(caplog):
    end = io.StringIO()
    with caplog.at_level(logging.WARNING, logger=LOGGER), collapsed_truncation_warnings(stream=end):
        for _ in range(5):
            logging.getLogger(LOGGER).warning("LM response was truncated; increase max_tokens or inspect history.")
        logging.getLogger(LOGGER).warning("some other warning")
    truncations = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(truncations) == 1 and "counted, not printed" in truncations[0].getMessage()
    assert any(r.getMessage() == "some other warning" for r in caplog.records)
    assert end.getvalue().strip() == "4 more LM replies reached max_tokens (not printed)"
    logging.getLogger(LOGGER).warning("LM response was truncated again")  # the filter is gone after the block
    assert len([r for r in caplog.records if "truncated" in r.getMessage()]) == 2
