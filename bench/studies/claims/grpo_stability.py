"""GRPO trains more stably than PPO."""

from __future__ import annotations

import numpy as np

from bench.studies.claims import Verdict, missing, register, side, values
from bench.studies.claims.rules import steadier


def _late_reward(curve) -> float | None:
    """The mean training reward over a run's last quarter of steps."""
    if not isinstance(curve, list) or not curve:
        return None
    return float(np.mean(curve[-max(1, len(curve) // 4) :]))


@register(
    "grpo_stability",
    text="GRPO trains more stably than PPO",
    source="DeepSeekMath (Shao et al., arXiv:2402.03300); repeated in most GRPO tutorials",
    rule=(
        "Supported if the seed-to-seed variance of GRPO's final test accuracy is below PPO's (the 95% "
        "interval of the variance ratio wholly below 1, F distribution, at least 3 seeds each); refuted if "
        "wholly above 1; inconclusive otherwise. The spread of the late training reward is shown beside it."
    ),
    sweeps=("grpo_ppo",),
)
def judge(runs) -> Verdict:
    grpo, ppo = side(runs, {"method": "grpo"}), side(runs, {"method": "ppo"})
    if len(grpo) < 2 or len(ppo) < 2:
        return missing("at least two seeds each of GRPO and PPO")
    verdict = steadier(values(grpo, "eval/accuracy"), values(ppo, "eval/accuracy"), "GRPO vs PPO, final accuracy")
    for name, frame in (("grpo", grpo), ("ppo", ppo)):
        late = [r for r in (_late_reward(c) for c in frame.get("train/reward_curve", [])) if r is not None]
        if len(late) >= 2:
            verdict.figures[f"{name}_late_reward_sd"] = float(np.std(late, ddof=1))
    return verdict
