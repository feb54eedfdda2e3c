"""ORPO (trl.experimental.orpo.ORPOTrainer): SFT on the chosen answer plus an odds-ratio penalty on
the rejected one, in one loss; no reference model at all."""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register


@register(
    "orpo", config="trl.experimental.orpo:ORPOConfig", data="preference", memory=MemoryFacts(nll_on_chosen=True)
)  # no reference; NLL on the chosen half
def build(ctx: RunContext):
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer(**ctx.trainer_kwargs())
