"""RLOO (trl.RLOOTrainer): online REINFORCE with a leave-one-out baseline over each prompt's group.

Same rollouts and rewards as GRPO (the task's reward functions, weighted alike); the baseline of
each completion is the mean reward of the other completions of its prompt.
"""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register

# Shared sampling settings -> this config's fields (the harness fills them from `sampling:`).
SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "max_completion_length"}


@register(
    "rloo",
    config="trl:RLOOConfig",
    data="prompts",
    sampling=SAMPLING,
    weights_field="reward_weights",
    memory=MemoryFacts(reference="beta"),
)
def build(ctx: RunContext):
    from trl import RLOOTrainer

    return RLOOTrainer(reward_funcs=list(ctx.reward_funcs), **ctx.trainer_kwargs())
