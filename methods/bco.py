"""BCO (trl.experimental.bco.BCOTrainer): binary classifier optimisation on unpaired completions
labelled desirable or undesirable, KTO's data (Jung et al., arXiv:2404.04656). The paper's density-
ratio correction needs a prompt embedding model; without one (as here) BCO is its plain BCE form."""

from __future__ import annotations

from methods import RunContext, register


@register("bco", config="trl.experimental.bco:BCOConfig", data="unpaired", needs="TRL 1.12 (1.16 has no trl.experimental.bco; BCO remains as DPO's loss_type bco_pair)")
def build(ctx: RunContext):
    from trl.experimental.bco import BCOTrainer

    return BCOTrainer(**ctx.trainer_kwargs())
