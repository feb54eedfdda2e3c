"""KTO (trl.KTOTrainer): offline, from unpaired completions labelled desirable or undesirable.

The harness builds the labels from the same scored base-model samples as DPO's pairs and spreads
both labels through the data, because KTO reads its dataset in order (it needs batch size > 1).
"""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register


def check(args) -> None:
    """KTOTrainer's own checks (trl/trainer/kto_trainer.py), which its config class does not make."""
    if args.loss_type not in ("apo_zero_unpaired",) and args.per_device_train_batch_size <= 1:
        raise ValueError(
            "Actual (not effective) batch size must be > 1. KTO will not work properly because the KL "
            "term will be equivalent to the implied reward."
        )


@register("kto", config="trl:KTOConfig", data="unpaired", check=check, memory=MemoryFacts(reference=True))
def build(ctx: RunContext):
    from trl import KTOTrainer

    return KTOTrainer(**ctx.trainer_kwargs())
