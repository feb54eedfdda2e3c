"""ORPO (trl.experimental.orpo.ORPOTrainer): SFT on the chosen answer plus an odds-ratio penalty on
the rejected one, in one loss; no reference model at all."""

from __future__ import annotations

from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from methods import RunContext, register


@register("orpo", config=ORPOConfig, data="preference")
def build(ctx: RunContext) -> ORPOTrainer:
    return ORPOTrainer(
        model=ctx.model,
        args=ctx.args,
        train_dataset=ctx.dataset,
        processing_class=ctx.tokenizer,
        peft_config=ctx.peft_config,
        callbacks=ctx.callbacks,
    )
