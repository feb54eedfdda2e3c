"""LoRA saves memory against full fine-tuning, at comparable accuracy."""

from __future__ import annotations

from bench.config.finetuning import FULL
from bench.studies.claims import Verdict, items, missing, register, side, values
from bench.studies.claims.rules import all_of, not_worse, saves

METHODS = ("grpo", "dpo", "sft")
MEMORY_MARGIN = 0.05  # a saving under 5% of the peak is not one to choose a method for
ACCURACY_MARGIN = 0.05  # "comparable": at most 5 accuracy points worse, by the paired interval


@register(
    "lora_memory",
    text="LoRA saves memory against full fine-tuning, at comparable accuracy",
    source="LoRA (Hu et al., arXiv:2106.09685); QLoRA (Dettmers et al., arXiv:2305.14314); TRL's PEFT guide",
    rule=(
        f"For each of {', '.join(METHODS)}: supported if LoRA's peak memory is lower by at least "
        f"{MEMORY_MARGIN:.0%} (95% interval over seeds) and its accuracy is at most {ACCURACY_MARGIN:.2f} "
        "below full fine-tuning's (paired interval on the same items); refuted if either interval lies "
        "wholly on the wrong side; inconclusive otherwise. The claim holds if it holds for every method."
    ),
)
def judge(runs) -> Verdict:
    parts = []
    for method in METHODS:
        lora, full = (
            side(runs, {"method": method, "peft/mode": "lora"}),
            side(runs, {"method": method, "peft/mode": FULL}),
        )
        if lora.empty or full.empty:
            parts.append(missing(f"{method} with LoRA and with full fine-tuning"))
            continue
        parts.append(
            saves(
                values(lora, "sys/peak_mem_bytes"),
                values(full, "sys/peak_mem_bytes"),
                f"{method} LoRA vs full, peak memory",
                MEMORY_MARGIN,
            )
        )
        a, b = items(lora), items(full)
        parts.append(
            not_worse(a, b, f"{method} LoRA vs full", ACCURACY_MARGIN)
            if a and b and len(a) == len(b)
            else missing(f"{method}'s per-item scores on both sides")
        )
    return all_of(parts)
