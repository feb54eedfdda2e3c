"""GRPO needs no critic, so it uses less memory than PPO."""

from __future__ import annotations

from bench.studies.claims import Verdict, missing, register, side, values
from bench.studies.claims.rules import saves

MARGIN = 0.05


@register(
    "grpo_critic",
    text="GRPO needs no critic (value model), so it uses less memory than PPO",
    source="DeepSeekMath (Shao et al., arXiv:2402.03300, section 4.1)",
    rule=(
        f"Supported if GRPO's peak memory is lower than PPO's by at least {MARGIN:.0%} (95% interval over "
        "seeds), at the same batch, group size (GRPO's group is one device batch) and completion length; "
        "refuted if the interval lies wholly below that; inconclusive otherwise."
    ),
    sweeps=("grpo_ppo",),
)
def judge(runs) -> Verdict:
    grpo, ppo = side(runs, {"method": "grpo"}), side(runs, {"method": "ppo"})
    if grpo.empty or ppo.empty:
        return missing("GRPO and PPO")
    return saves(
        values(grpo, "sys/peak_mem_bytes"), values(ppo, "sys/peak_mem_bytes"), "GRPO vs PPO, peak memory", MARGIN
    )
