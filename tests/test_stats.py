"""Intervals and paired tests against answers worked out by hand or published."""

from __future__ import annotations

import numpy as np
import pytest

from bench.report.stats import (
    accuracy_interval,
    bootstrap,
    combine_seeds,
    holm,
    mcnemar,
    mean_interval,
    paired_test,
    sign_flip,
    wilson,
)


def discordant(b: int, c: int, same: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Items where the method alone is right b times, the base alone c times, both `same` times."""
    method = np.r_[np.ones(b), np.zeros(c), np.ones(same)]
    base = np.r_[np.zeros(b), np.ones(c), np.ones(same)]
    return method, base


def test_exact_mcnemar_known_values():
    assert mcnemar(10, 0) == pytest.approx(2 * 0.5**10)  # 0.00195
    assert mcnemar(0, 10) == mcnemar(10, 0)
    assert mcnemar(7, 3) == pytest.approx(2 * (1 + 10 + 45 + 120) / 2**10)  # 2·P(X ≤ 3), X ~ Bin(10, ½)
    assert mcnemar(5, 5) == 1.0 and mcnemar(0, 0) == 1.0


def test_wilson_interval_matches_published_values():
    assert wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Newcombe (1998), method 3
    low, high = wilson(0, 20)
    assert low == pytest.approx(0, abs=1e-12) and high == pytest.approx(0.1611, abs=1e-4)
    assert accuracy_interval([1.0] * 8 + [0.0] * 2) == wilson(8, 10)


def test_fractional_scores_get_a_t_interval():
    scores = np.linspace(0.2, 0.8, 31)
    low, high = accuracy_interval(scores)
    assert (low, high) == mean_interval(scores) and low < 0.5 < high and high - low < 0.25
    assert np.isnan(mean_interval([0.5])).all()


def test_paired_test_uses_mcnemar_on_binary_items():
    method, base = discordant(10, 0)
    result = paired_test(method, base)
    assert result.test == "mcnemar" and result.p == pytest.approx(mcnemar(10, 0))
    assert result.delta == pytest.approx(10 / 30) and result.ci_low > 0
    assert paired_test(*discordant(4, 4)).p == 1.0


def test_sign_flip_agrees_with_exact_mcnemar_and_is_used_for_fractional_scores():
    method, base = discordant(7, 3)
    assert sign_flip(method, base) == pytest.approx(mcnemar(7, 3), abs=0.02)
    result = paired_test(method * 0.5 + 0.25, base * 0.5 + 0.25)  # same differences, not 0/1
    assert result.test == "permutation" and result.p == pytest.approx(mcnemar(7, 3), abs=0.02)


def test_bootstrap_interval_covers_the_true_delta():
    rng = np.random.default_rng(123)
    base = (rng.random(2000) < 0.3).astype(float)
    method = np.maximum(base, rng.random(2000) < 0.2)  # true delta: 0.7 · 0.2 = 0.14
    result = bootstrap(method, base)
    assert result.ci_low < 0.14 < result.ci_high and result.ci_high - result.ci_low < 0.05
    assert result.p < 0.001 and result == bootstrap(method, base)  # seeded: reproducible


def test_no_difference_is_not_significant():
    items = np.random.default_rng(0).random(50)
    result = bootstrap(items, items)
    assert (result.delta, result.ci_low, result.ci_high, result.p) == (0, 0, 0, 1)
    assert sign_flip(items, items) == 1.0


def test_combine_seeds_averages_each_item():
    assert combine_seeds([[1, 0, 1], [1, 1, 0]]).tolist() == [1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="different item counts"):
        combine_seeds([[1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="equally long"):
        paired_test([1, 0], [1, 0, 1])


def test_holm_on_a_hand_worked_case():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, then the running max.
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, np.nan, 0.4])
    assert np.isnan(adjusted[1]) and adjusted[[0, 2]].tolist() == pytest.approx([0.8, 0.8])
    assert holm([0.9, 0.8]).max() == 1.0 and holm([]).size == 0
