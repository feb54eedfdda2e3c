"""BCO (trl.experimental.bco.BCOTrainer): binary classifier optimisation on unpaired completions
labelled desirable or undesirable, KTO's data (Jung et al., arXiv:2404.04656). The paper's density-
ratio correction needs a prompt embedding model; without one (as here) BCO is its plain BCE form."""

from __future__ import annotations

from trl.experimental.bco import BCOConfig, BCOTrainer

from methods import RunContext, register


@register("bco", config=BCOConfig, data="unpaired")
def build(ctx: RunContext) -> BCOTrainer:
    return BCOTrainer(**ctx.trainer_kwargs())
