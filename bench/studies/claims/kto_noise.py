"""KTO is more robust to noisy preference data than DPO."""

from __future__ import annotations

from typing import cast

import numpy as np

from bench.studies.claims import Verdict, items, missing, register, side
from bench.studies.claims.rules import improves

CLEAN, NOISY = 0.0, 0.4


@register(
    "kto_noise",
    text="KTO is more robust to noisy preference data than DPO",
    source="KTO (Ethayarajh et al., arXiv:2402.01306, section 4)",
    rule=(
        f"With the same pairs flipped at rate {NOISY} (each pair's chosen and rejected swapped, its two KTO "
        "labels with it), supported if DPO loses more accuracy from the clean data than KTO does (the "
        "paired interval, over the same test items, of DPO's per-item drop minus KTO's wholly above 0); "
        "refuted if wholly below 0; inconclusive otherwise. The 0.2 rate is shown beside it."
    ),
    sweeps=("label_noise",),
)
def judge(runs) -> Verdict:
    scores: dict[tuple[str, float], list[float] | None] = {}
    for method in ("dpo", "kto"):
        for rate in (CLEAN, NOISY):
            scores[method, rate] = items(side(runs, {"method": method, "data/label_noise": rate}))  # as recorded
    if any(v is None for v in scores.values()) or len({len(v) for v in scores.values() if v is not None}) != 1:
        return missing(f"DPO and KTO at label noise {CLEAN} and {NOISY} on the same items")
    present = cast("dict[tuple[str, float], list[float]]", scores)  # none is None: checked above
    drop = {m: np.asarray(present[m, CLEAN]) - np.asarray(present[m, NOISY]) for m in ("dpo", "kto")}
    verdict = improves(
        list(drop["dpo"]), list(drop["kto"]), f"DPO's accuracy drop at noise {NOISY}", over="KTO's, paired by item"
    )
    for (method, rate), values in present.items():
        verdict.figures[f"{method}_accuracy_at_{rate}"] = float(np.mean(values))
    return verdict
