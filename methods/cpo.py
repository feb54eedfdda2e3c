"""CPO (trl.experimental.cpo.CPOTrainer): reference-free preference optimisation on chosen/rejected
pairs, a DPO-like term on the policy's own log-likelihoods plus a behaviour-cloning term on the
chosen answer (Xu et al., arXiv:2401.08417). SimPO is this trainer with its `simpo` loss (a variant)."""

from __future__ import annotations

from methods import MemoryFacts, RunContext, register


@register(
    "cpo", config="trl.experimental.cpo:CPOConfig", data="preference", memory=MemoryFacts(nll_on_chosen=True)
)  # no reference; behaviour cloning on chosen
def build(ctx: RunContext):
    from trl.experimental.cpo import CPOTrainer

    return CPOTrainer(**ctx.trainer_kwargs())
