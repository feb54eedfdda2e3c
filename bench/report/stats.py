"""Confidence intervals and paired significance tests on per-item evaluation results.

Pure functions on arrays of per-item scores in [0, 1] (1 = correct), in the same item order for the
method and the base model, so every comparison is paired: both were scored on the same problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Per-item (or per-seed) scores: a list, or the array the callers already hold.
Scores = Sequence[float] | np.ndarray

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Paired:
    """A paired comparison of a method against a baseline on the same items."""

    delta: float  # mean(method) - mean(base)
    ci_low: float  # 95% paired-bootstrap interval of delta
    ci_high: float
    p: float  # two-sided
    test: str  # "mcnemar" (0/1 items), "permutation" (fractional scores) or "bootstrap"


def is_binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n (sound near 0 and 1 and for small n)."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def mean_interval(x: Scores) -> tuple[float, float]:
    """95% t-interval of the mean of scores in [0, 1], clipped to [0, 1]."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * stats.sem(x)
    return float(max(0.0, x.mean() - half)), float(min(1.0, x.mean() + half))


def accuracy_interval(items: Scores) -> tuple[float, float]:
    """Wilson for 0/1 items, a t-interval for fractional scores (or seed-averaged items)."""
    x = np.asarray(items, dtype=float)
    return wilson(int(x.sum()), len(x)) if len(x) and is_binary(x) else mean_interval(x)


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: b and c are the discordant counts (only one side correct)."""
    return float(stats.binomtest(int(b), int(b + c), 0.5).pvalue) if b + c else 1.0


def bootstrap(items: Scores, base: Scores, resamples: int = 10_000, seed: int = 0) -> Paired:
    """Paired bootstrap over items: resample item indices, the same for both arrays."""
    d = np.asarray(items, dtype=float) - np.asarray(base, dtype=float)
    rng = np.random.default_rng(seed)
    # Chunked, so 10,000 resamples of a few thousand items never hold one huge index matrix.
    means = np.concatenate(
        [d[rng.integers(0, len(d), (size, len(d)))].mean(axis=1) for size in _chunks(resamples, 1000)]
    )
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    # Two-sided: twice the smaller tail beyond zero, with the +1 that keeps a finite sample's p above 0.
    tail = min((means <= 0).sum(), (means >= 0).sum())
    p = min(1.0, 2 * (int(tail) + 1) / (resamples + 1))
    return Paired(float(d.mean()), float(low), float(high), p, "bootstrap")


def sign_flip(items: Scores, base: Scores, resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value: under no difference, each item's (method - base) sign is a coin flip.

    On 0/1 items it is (up to Monte Carlo error) the exact McNemar test; unlike a bootstrap p-value it
    stays calibrated when only a handful of items differ.
    """
    d = np.asarray(items, dtype=float) - np.asarray(base, dtype=float)
    rng = np.random.default_rng(seed)
    observed = abs(d.mean()) - 1e-12  # the tolerance keeps float noise from splitting ties
    hits = sum(
        int((np.abs((rng.choice((-1.0, 1.0), (size, len(d))) * d).mean(axis=1)) >= observed).sum())
        for size in _chunks(resamples, 1000)
    )
    return (hits + 1) / (resamples + 1)


def _chunks(total: int, size: int) -> list[int]:
    return [size] * (total // size) + ([total % size] if total % size else [])


def paired_test(items: Scores, base: Scores, seed: int = 0) -> Paired:
    """Method vs base on the same items: exact McNemar when both are 0/1, else a sign-flip permutation test.

    The interval of delta is the paired bootstrap's in both cases.
    """
    a, b = np.asarray(items, dtype=float), np.asarray(base, dtype=float)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"paired test needs two equally long item lists, got {len(a)} and {len(b)}")
    boot = bootstrap(a, b, seed=seed)
    if is_binary(a) and is_binary(b):
        p = mcnemar(int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()))
        return Paired(boot.delta, boot.ci_low, boot.ci_high, p, "mcnemar")
    # Not the bootstrap's own p-value: with few differing items it is far too small (see sign_flip).
    return Paired(boot.delta, boot.ci_low, boot.ci_high, sign_flip(a, b, seed=seed), "permutation")


def combine_seeds(per_seed: Sequence[Sequence[float]]) -> np.ndarray:
    """Per-item mean over seeds (items in the same order in every seed): each item's success rate."""
    arrays = [np.asarray(x, dtype=float) for x in per_seed]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"seeds scored different item counts: {sorted({len(a) for a in arrays})}")
    return np.mean(arrays, axis=0)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN entries are not tests and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    tested = ~np.isnan(p)
    m = int(tested.sum())
    order = np.argsort(p[tested])
    # The i-th smallest p is multiplied by (m - i); the running max keeps the adjusted order monotone.
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[tested][order]))
    out[np.flatnonzero(tested)[order]] = adjusted
    return out
