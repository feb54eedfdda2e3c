"""BCO (trl.experimental.bco.BCOTrainer): binary classifier optimisation on unpaired completions
labelled desirable or undesirable, KTO's data (Jung et al., arXiv:2404.04656). The paper's density-
ratio correction needs a prompt embedding model; without one (as here) BCO is its plain BCE form."""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register


@register(
    "bco",
    config="trl.experimental.bco:BCOConfig",
    data="unpaired",
    needs="TRL 1.12 (1.16 has no trl.experimental.bco; BCO remains as DPO's loss_type bco_pair)",
    # TRL 1.12's BCOTrainer sums the chosen and rejected rows' logits for its metrics with autograd on
    # (`policy_chosen_logits.nansum()`): nansum saves its input, an indexed copy of every row's logits.
    memory=MemoryFacts(reference=True, logits_copies=1),
)
def build(ctx: RunContext):
    from trl.experimental.bco import BCOTrainer

    return BCOTrainer(**ctx.trainer_kwargs())
