"""Reinforcement learning works even at very low LoRA rank."""

from __future__ import annotations

from bench.config.finetuning import FULL
from bench.studies.claims import Verdict, items, missing, register, side
from bench.studies.claims.rules import all_of, improves, not_worse

LOWEST = 1
MARGIN = 0.05


@register(
    "low_rank",
    text="Reinforcement learning works even at very low LoRA rank (down to r=1)",
    source="Thinking Machines, 'LoRA Without Regret' (2025); Tina (Wang et al., arXiv:2504.15777)",
    rule=(
        f"Supported if GRPO at r={LOWEST} beats the base model (paired interval of the delta wholly above 0) "
        f"and is at most {MARGIN:.2f} below full fine-tuning (paired interval); refuted if it does not beat "
        "the base (interval wholly below 0) or is clearly worse than full fine-tuning; inconclusive otherwise. "
        "r=4, 16 and 64 are shown beside it."
    ),
    sweeps=("low_rank", "lora_memory"),
)
def judge(runs) -> Verdict:
    ranks = side(runs, {"sweep": "low_rank", "method": "grpo"})
    full = side(runs, {"sweep": "lora_memory", "method": "grpo", "peft/mode": FULL})
    lowest = side(ranks, {"peft/r": LOWEST})
    a = items(lowest)
    if not a:
        return missing(f"GRPO at r={LOWEST}")
    base = items(lowest, "eval/base_items")
    parts = [improves(a, base, f"GRPO r={LOWEST}") if base else missing("the base model's per-item scores")]
    b = items(full)
    parts.append(
        not_worse(a, b, f"GRPO r={LOWEST} vs full fine-tuning", MARGIN)
        if b and len(b) == len(a)
        else missing("GRPO with full fine-tuning (the lora_memory sweep)")
    )
    verdict = all_of(parts)
    for r in sorted({int(x) for x in ranks["peft/r"].dropna()}):
        scores = items(side(ranks, {"peft/r": r}))
        if scores:
            verdict.figures[f"accuracy_r{r}"] = sum(scores) / len(scores)
    return verdict
