"""DPO (trl.DPOTrainer): offline preference optimisation on chosen/rejected pairs.

The reference model is the base itself, reached by disabling the LoRA adapter: no second copy.
"""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register

# The loss types whose formula reads `label_smoothing` in TRL 1.12 (trl/trainer/dpo_trainer.py); its
# `sigmoid` no longer does, so cDPO (smoothed sigmoid) cannot be asked of this trainer.
SMOOTHED = {"robust", "exo_pair", "aot", "aot_unpaired"}


def check(args) -> None:
    """Refuse a setting the trainer would ignore without a word."""
    if args.label_smoothing and not SMOOTHED & set(args.loss_type):
        raise ValueError(
            f"label_smoothing={args.label_smoothing} has no effect with loss_type {list(args.loss_type)}: in TRL "
            f"1.12 only {', '.join(sorted(SMOOTHED))} read it (the `sigmoid` loss, cDPO's, does not). Use "
            "method=rdpo (loss_type robust) for a DPO that models flipped labels, or set label_smoothing: 0."
        )


@register("dpo", config="trl:DPOConfig", data="preference", check=check, memory=MemoryFacts(reference=True))
def build(ctx: RunContext):
    from trl import DPOTrainer

    return DPOTrainer(**ctx.trainer_kwargs())
