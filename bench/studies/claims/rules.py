"""Verdict rules: from measured values to supported, refuted or inconclusive, with the budget that would
settle an inconclusive one. Pure functions on numbers (tested on made-up results).

Each rule compares an interval with a threshold the claim names, the way an equivalence or
non-inferiority test does: supported when the whole 95% interval lies on the claim's side of the
threshold, refuted when it lies wholly on the other side, inconclusive when it straddles it. The
budget for an inconclusive verdict scales the sample so that the interval's half-width shrinks to the
observed distance from the threshold (half-widths fall as 1/√n), so it is an estimate from the
observed variance, not a promise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from bench.report.stats import Scores, paired_test

SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"
Z = 1.96  # two-sided 95%


@dataclass
class Verdict:
    verdict: str  # supported | refuted | inconclusive
    evidence: str  # one sentence with the figures behind it
    figures: dict = field(default_factory=dict)  # a rule's: its interval (low, high), threshold and label
    budget: str = ""  # for inconclusive: what would settle it
    parts: list = field(default_factory=list)  # a claim made of several rules: each part's verdict

    def __post_init__(self):
        if self.verdict not in (SUPPORTED, REFUTED, INCONCLUSIVE):
            raise ValueError(f"verdict {self.verdict!r}")


def _needed(n: int, half_width: float, distance: float) -> int:
    """The sample size at which a half-width of `half_width` at `n` shrinks to `distance`."""
    if distance <= 0 or not math.isfinite(half_width):
        return 0
    return max(n + 1, math.ceil(n * (half_width / distance) ** 2))


def _side(low: float, high: float, threshold: float) -> str:
    if low > threshold:
        return SUPPORTED
    if high < threshold:
        return REFUTED
    return INCONCLUSIVE


def saves(a: Scores, b: Scores, what: str, margin: float = 0.05, unit: str = "seeds") -> Verdict:
    """ "A uses less `what` than B": A's relative saving (1 − mean A / mean B), per seed values of each,
    against `margin` (a saving smaller than that is not one a user would pick a method for).

    The interval is the saving ± 1.96 standard errors (Welch, per side's seed spread). With one seed
    on a side there is no spread to estimate: the saving is compared with the margin as measured, and
    the evidence says so. `unit` names the samples (seeds; rounds, for a benchmark's repeats).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b) or b.mean() <= 0:
        return Verdict(INCONCLUSIVE, f"no {what} measured on one side", budget="run both sides")
    saving = 1 - a.mean() / b.mean()
    if len(a) < 2 or len(b) < 2:
        se, note = 0.0, " (one seed on a side: no seed spread to widen the interval)"
    else:
        se, note = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) / b.mean(), ""
    low, high = saving - Z * se, saving + Z * se
    verdict = _side(low, high, margin)
    figures = {
        "label": f"{what}: saving",
        "a_mean": a.mean(),
        "b_mean": b.mean(),
        "value": saving,
        "low": low,
        "high": high,
        "threshold": margin,
        "seeds": [len(a), len(b)],
    }
    evidence = (
        f"{what}: {a.mean():.4g} against {b.mean():.4g}, a saving of {saving:+.1%} "
        f"[{low:+.1%}, {high:+.1%}] against the {margin:.0%} the claim needs{note}"
    )
    budget = ""
    if verdict == INCONCLUSIVE:
        n = _needed(min(len(a), len(b)), Z * se, abs(saving - margin))
        budget = f"about {n} {unit} per side" if n else "a saving away from the margin"
    return Verdict(verdict, evidence, figures, budget)


def not_worse(items_a: Scores, items_b: Scores, what: str, margin: float = 0.05) -> Verdict:
    """ "A is comparable to B": non-inferiority of A's per-item accuracy on the same items, by the paired
    bootstrap interval of the delta (bench.report.stats), against −`margin` (accuracy points)."""

    test = paired_test(items_a, items_b)
    verdict = _side(test.ci_low, test.ci_high, -margin)
    figures = {
        "label": f"{what}: accuracy delta",
        "value": test.delta,
        "low": test.ci_low,
        "high": test.ci_high,
        "threshold": -margin,
        "p": test.p,
        "items": len(items_a),
    }
    evidence = (
        f"{what}: accuracy delta {test.delta:+.3f} [{test.ci_low:+.3f}, {test.ci_high:+.3f}] on "
        f"{len(items_a)} paired items, against a margin of −{margin:.2f}"
    )
    budget = ""
    if verdict == INCONCLUSIVE:
        half = (test.ci_high - test.ci_low) / 2
        n = _needed(len(items_a), half, abs(test.delta + margin))
        budget = f"about {n} items" if n else "a delta away from the margin"
    return Verdict(verdict, evidence, figures, budget)


def improves(items: Scores, base: Scores, what: str, over: str = "the base model") -> Verdict:
    """ "Training works": A's per-item accuracy above the base model's on the same items (the paired
    interval of the delta wholly above 0). `over` names what B is in the evidence line."""

    test = paired_test(items, base)
    verdict = _side(test.ci_low, test.ci_high, 0.0)
    figures = {
        "label": f"{what}: delta over base",
        "value": test.delta,
        "low": test.ci_low,
        "high": test.ci_high,
        "threshold": 0.0,
        "p": test.p,
        "items": len(items),
    }
    evidence = f"{what}: {test.delta:+.3f} [{test.ci_low:+.3f}, {test.ci_high:+.3f}] over {over}"
    budget = ""
    if verdict == INCONCLUSIVE:
        n = _needed(len(items), (test.ci_high - test.ci_low) / 2, abs(test.delta))
        budget = f"about {n} items" if n else "a larger effect"
    return Verdict(verdict, evidence, figures, budget)


def steadier(a: Scores, b: Scores, what: str) -> Verdict:
    """ "A is more stable than B": the seed-to-seed variance of A's final value below B's, by the 95%
    interval of the variance ratio var(A)/var(B) (F distribution), against 1."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return Verdict(INCONCLUSIVE, f"{what}: needs at least two seeds per side", budget="at least 3 seeds per side")
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if vb == 0:
        verdict = INCONCLUSIVE if va == 0 else REFUTED
        return Verdict(
            verdict,
            f"{what}: B did not vary across seeds (A's variance {va:.3g})",
            {"var_a": va, "var_b": vb},
            "more seeds" if verdict == INCONCLUSIVE else "",
        )
    ratio = va / vb
    da, db = len(a) - 1, len(b) - 1
    low, high = ratio / stats.f.ppf(0.975, da, db), ratio / stats.f.ppf(0.025, da, db)
    # Supported when the ratio's interval lies wholly below 1 (A steadier), refuted wholly above.
    verdict = SUPPORTED if high < 1 else REFUTED if low > 1 else INCONCLUSIVE
    figures = {
        "label": f"{what}: variance ratio",
        "sd_a": math.sqrt(va),
        "sd_b": math.sqrt(vb),
        "value": ratio,
        "low": low,
        "high": high,
        "threshold": 1.0,
        "seeds": [len(a), len(b)],
    }
    evidence = (
        f"{what}: seed spread (sd) {math.sqrt(va):.3g} against {math.sqrt(vb):.3g}, variance ratio "
        f"{ratio:.3g} [{low:.3g}, {high:.3g}] over {len(a)} and {len(b)} seeds"
    )
    budget = ""
    if verdict == INCONCLUSIVE and ratio != 1:
        n = next(
            (
                n
                for n in range(max(len(a), len(b)) + 1, 1000)
                if (ratio / stats.f.ppf(0.975, n - 1, n - 1) > 1) or (ratio * stats.f.ppf(0.975, n - 1, n - 1) < 1)
            ),
            None,
        )
        budget = f"about {n} seeds per side at this ratio" if n else "the spreads are too close to separate"
    return Verdict(verdict, evidence, figures, budget)


def all_of(parts: Sequence[Verdict]) -> Verdict:
    """A claim made of parts: refuted if any part is, supported if every part is, else inconclusive."""
    kinds = [v.verdict for v in parts]
    verdict = (
        REFUTED if REFUTED in kinds else SUPPORTED if kinds and all(k == SUPPORTED for k in kinds) else INCONCLUSIVE
    )
    budget = "; ".join(p.budget for p in parts if p.verdict == INCONCLUSIVE and p.budget)
    return Verdict(verdict, "; ".join(p.evidence for p in parts), {}, budget, list(parts))


def leaves(verdict: Verdict) -> list[Verdict]:
    """The rules' own verdicts inside a claim's (itself, when it is one rule)."""
    return [leaf for part in verdict.parts for leaf in leaves(part)] if verdict.parts else [verdict]
