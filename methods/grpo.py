"""GRPO (trl.GRPOTrainer): online RL with group-relative advantages; no value or reward model."""

from __future__ import annotations

from methods import RunContext, register

# Shared sampling settings -> this config's fields (the harness fills them from `sampling:`).
SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "max_completion_length"}


@register("grpo", config="trl:GRPOConfig", data="prompts", sampling=SAMPLING)
def build(ctx: RunContext):
    from trl import GRPOTrainer

    # GRPO logs each reward separately and optimises their weighted sum: give it the task's weights
    # so its objective is the same scalar that scores every other method's data.
    ctx.args.reward_weights = ctx.reward_weights
    return GRPOTrainer(reward_funcs=ctx.reward_funcs, **ctx.trainer_kwargs())
