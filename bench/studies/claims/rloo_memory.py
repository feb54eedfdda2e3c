"""RLOO uses less memory and time than PPO."""

from __future__ import annotations

from bench.studies.claims import Verdict, missing, register, side, values
from bench.studies.claims.rules import all_of, saves

MARGIN = 0.05


@register(
    "rloo_memory",
    text="RLOO uses less memory and less time than PPO",
    source="Back to Basics (Ahmadian et al., arXiv:2402.14740); TRL's RLOO docs",
    rule=(
        f"Supported if RLOO's peak memory and its training time are each lower than PPO's by at least "
        f"{MARGIN:.0%} (95% intervals over seeds); refuted if either interval lies wholly below that; "
        "inconclusive otherwise."
    ),
    sweeps=("rloo_ppo",),
)
def judge(runs) -> Verdict:
    rloo, ppo = side(runs, {"method": "rloo"}), side(runs, {"method": "ppo"})
    if rloo.empty or ppo.empty:
        return missing("RLOO and PPO")
    return all_of(
        [
            saves(
                values(rloo, "sys/peak_mem_bytes"),
                values(ppo, "sys/peak_mem_bytes"),
                "RLOO vs PPO, peak memory",
                MARGIN,
            ),
            saves(values(rloo, "time/train_s"), values(ppo, "time/train_s"), "RLOO vs PPO, training time", MARGIN),
        ]
    )
