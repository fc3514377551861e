"""Wilson and paired-difference intervals against values computed by hand / known references."""

import pytest

from agentdistill.benchmarks.stats import paired_difference, wilson


def test_wilson_matches_the_textbook_value():
    # 20/72: p = 0.2778; Wilson 95% = [0.1878, 0.3901] (Newcombe 1998 formula, computed by hand)
    w = wilson(20, 72)
    assert w["rate"] == pytest.approx(20 / 72)
    assert w["low"] == pytest.approx(0.1878, abs=1e-3) and w["high"] == pytest.approx(0.3901, abs=1e-3)


def test_wilson_at_the_edges_stays_in_range():
    zero, full = wilson(0, 20), wilson(20, 20)
    assert zero["low"] == 0.0 and 0.1 < zero["high"] < 0.2
    assert full["high"] == 1.0 and 0.8 < full["low"] < 0.9


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="n > 0"):
        wilson(0, 0)
    with pytest.raises(ValueError, match="k <= n"):
        wilson(5, 3)


def test_paired_difference_counts_discordant_questions():
    d = paired_difference([1, 1, 0, 1], [0, 1, 0, 0])
    assert d["difference"] == pytest.approx(0.5) and d["a_only"] == 2 and d["b_only"] == 0
    assert d["low"] < 0.5 < d["high"]
    same = paired_difference([1, 0], [1, 0])
    assert same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="equal"):
        paired_difference([1], [1, 0])
