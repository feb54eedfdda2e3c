"""DPO (trl.DPOTrainer): offline preference optimisation on chosen/rejected pairs.

The reference model is the base itself, reached by disabling the LoRA adapter: no second copy.
"""

from __future__ import annotations

from trl import DPOConfig, DPOTrainer

from methods import RunContext, register


@register("dpo", config=DPOConfig, data="preference")
def build(ctx: RunContext) -> DPOTrainer:
    return DPOTrainer(
        model=ctx.model,
        args=ctx.args,
        train_dataset=ctx.dataset,
        processing_class=ctx.tokenizer,
        peft_config=ctx.peft_config,
        callbacks=ctx.callbacks,
    )
