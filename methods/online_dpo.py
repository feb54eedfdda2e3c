"""Online DPO (trl.experimental.online_dpo.OnlineDPOTrainer; Guo et al., arXiv:2402.04792): each step
samples two completions per prompt from the current policy, ranks them by the task's own reward (the
same weighted reward functions GRPO optimises: no judge LLM, no reward model) and takes a DPO step on
that pair. The reference is the base (adapter disabled), as for DPO."""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register

SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "max_new_tokens"}


# The same scalar that scores every other method's data: the task's rewards, weighted (`weights_field`).
@register(
    "online_dpo",
    config="trl.experimental.online_dpo:OnlineDPOConfig",
    data="prompts",
    sampling=SAMPLING,
    weights_field="reward_weights",
    memory=MemoryFacts(reference=True, completions_per_prompt=2),
)
def build(ctx: RunContext):
    from trl.experimental.online_dpo import OnlineDPOTrainer

    return OnlineDPOTrainer(reward_funcs=list(ctx.reward_funcs), **ctx.trainer_kwargs())
