"""KTO (trl.KTOTrainer): offline, from unpaired completions labelled desirable or undesirable.

The harness builds the labels from the same scored base-model samples as DPO's pairs and spreads
both labels through the data, because KTO reads its dataset in order (it needs batch size > 1).
"""

from __future__ import annotations

from trl import KTOConfig, KTOTrainer

from methods import RunContext, register


@register("kto", config=KTOConfig, data="unpaired")
def build(ctx: RunContext) -> KTOTrainer:
    return KTOTrainer(
        model=ctx.model,
        args=ctx.args,
        train_dataset=ctx.dataset,
        processing_class=ctx.tokenizer,
        peft_config=ctx.peft_config,
        callbacks=ctx.callbacks,
    )
