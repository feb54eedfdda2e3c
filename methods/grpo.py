"""GRPO (trl.GRPOTrainer): online RL with group-relative advantages; no value or reward model."""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register

# Shared sampling settings -> this config's fields (the harness fills them from `sampling:`).
SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "max_completion_length"}


# GRPO logs each reward separately and optimises their weighted sum: the harness gives it the task's
# weights (`weights_field`), so its objective is the same scalar that scores every other method's data.
@register(
    "grpo",
    config="trl:GRPOConfig",
    data="prompts",
    sampling=SAMPLING,
    weights_field="reward_weights",
    memory=MemoryFacts(reference="beta"),
)
def build(ctx: RunContext):
    from trl import GRPOTrainer

    return GRPOTrainer(reward_funcs=list(ctx.reward_funcs), **ctx.trainer_kwargs())
