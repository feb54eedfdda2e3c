"""SFT (trl.SFTTrainer): supervised fine-tuning on the task's gold completions of the same prompts.

The supervised baseline: what the reinforcement methods must beat with the same prompts and budget.
The loss covers the completion only (TRL's default for prompt/completion data).
"""

from __future__ import annotations

from trl import SFTConfig, SFTTrainer

from methods import RunContext, register


@register("sft", config=SFTConfig, data="gold")
def build(ctx: RunContext) -> SFTTrainer:
    return SFTTrainer(**ctx.trainer_kwargs())
