"""What peft builds for this run's config, on the meta device: the LoRA audit validation checks."""

from __future__ import annotations

from bench.config import finetuning
from bench.measure.params import Audit, architecture, audit, meta_model, wrap


def audit_config(cfg) -> Audit:
    """The audit of a composed run config: peft's wrap of its architecture on the meta device."""

    config, source = architecture(cfg.model)
    model = meta_model(config)
    peft = finetuning.peft_config(cfg.peft)
    wrapped = model if peft is None else wrap(model, peft)
    return audit(wrapped, peft, finetuning.mode(cfg.peft), source)
