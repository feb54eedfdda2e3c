"""SFT (trl.SFTTrainer): supervised fine-tuning on the task's gold completions of the same prompts.

The supervised baseline: what the reinforcement methods must beat with the same prompts and budget.
The loss covers the completion only (TRL's default for prompt/completion data).
"""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register


@register("sft", config="trl:SFTConfig", data="gold", memory=MemoryFacts())  # no reference, one logits
def build(ctx: RunContext):
    from trl import SFTTrainer

    return SFTTrainer(**ctx.trainer_kwargs())
