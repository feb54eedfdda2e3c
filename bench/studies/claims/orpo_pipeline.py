"""ORPO does SFT and preference optimisation in one step, more cheaply than SFT followed by DPO."""

from __future__ import annotations

from bench.studies.claims import Verdict, items, missing, register, side, values
from bench.studies.claims.rules import all_of, not_worse, saves

TIME_MARGIN = 0.05  # ORPO must save at least 5% of the pipeline's total time
MEMORY_MARGIN = -0.05  # and use at most 5% more peak memory than the pipeline's largest stage
ACCURACY_MARGIN = 0.05  # at most 5 accuracy points below the pipeline's, by the paired interval
PIPELINE = "sft→dpo"


def cost(runs, key: str) -> list[float]:
    """A pipeline's figure where the run has one (every stage charged), else the run's own."""
    pipeline = {"time/full_s": "pipeline/full_s", "sys/peak_mem_bytes": "pipeline/peak_mem_bytes"}[key]
    if pipeline in runs and runs[pipeline].notna().all():
        return values(runs, pipeline)
    return values(runs, key)


@register(
    "orpo_one_step",
    text="ORPO does SFT and preference optimisation in one step, more cheaply than SFT then DPO",
    source="ORPO (Hong et al., arXiv:2403.07691); TRL's ORPO docs",
    rule=(
        f"ORPO against the SFT→DPO pipeline (DPO trained on the merged SFT model, both stages' time charged): "
        f"supported if ORPO's total time is lower by at least {TIME_MARGIN:.0%} (95% interval over seeds), its "
        f"peak memory at most {-MEMORY_MARGIN:.0%} above the pipeline's largest stage, and its accuracy at most "
        f"{ACCURACY_MARGIN:.2f} below the pipeline's (paired interval on the same items); refuted if any "
        "interval lies wholly on the wrong side; inconclusive otherwise."
    ),
    sweeps=("orpo_pipeline",),
)
def judge(runs) -> Verdict:
    orpo, pipeline = side(runs, {"method": "orpo"}), side(runs, {"method": PIPELINE})
    if orpo.empty or pipeline.empty:
        return missing(f"ORPO and the {PIPELINE} pipeline")
    a, b = items(orpo), items(pipeline)
    return all_of(
        [
            saves(
                cost(orpo, "time/full_s"), cost(pipeline, "time/full_s"), f"ORPO vs {PIPELINE}, total time", TIME_MARGIN
            ),
            saves(
                cost(orpo, "sys/peak_mem_bytes"),
                cost(pipeline, "sys/peak_mem_bytes"),
                f"ORPO vs {PIPELINE}, peak memory",
                MEMORY_MARGIN,
            ),
            not_worse(a, b, f"ORPO vs {PIPELINE}", ACCURACY_MARGIN)
            if a and b and len(a) == len(b)
            else missing("per-item scores on both sides"),
        ]
    )
