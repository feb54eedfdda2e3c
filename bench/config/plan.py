"""A run resolved once: everything the later phases need that can be known before any weights load.

`resolve(cfg)` validates the config (in seconds, bench.config.validation), and returns the plan: the
runtime, the method and its validated TRL config, the LoRA audit, a pipeline's first stage, the settings
the run declares, its config hash and its output folder. Setup, training, evaluation and the record read
the plan and recompute none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from bench.config import declared, hashing, validation
from bench.config.stages import Stage


@dataclass(frozen=True)
class Plan:
    cfg: DictConfig
    runtime: object  # bench.system.runtime.Runtime
    method: object  # methods.Method
    trainer_config: object  # the method's TRL config, as validated: the one the trainer is built with
    configs: dict  # validated configs of the trainers the adapter runs first (PPO's reward model)
    audit: object  # bench.measure.params.Audit: what peft builds on this architecture
    stage: Stage | None  # a pipeline's first stage (init_from), None for a run from model= itself
    declared: list[str]  # the settings the run chose on purpose (fair/declared)
    config_hash: str
    output_dir: Path


def resolve(cfg: DictConfig, runtime=None) -> Plan:
    """Check `cfg` and resolve it; a BenchError names the problem before anything expensive."""
    from bench.system.runtime import resolve_runtime  # heavy (torch): callers that only compose skip it

    runtime = runtime or resolve_runtime(cfg.device, cfg.precision)
    checked = validation.validate(cfg, runtime)
    return Plan(
        cfg=cfg,
        runtime=runtime,
        method=checked.method,
        trainer_config=checked.trainer_config,
        configs=checked.configs,
        audit=checked.audit,
        stage=checked.stage,
        declared=declared.of_run(cfg, checked.method),
        config_hash=hashing.config_hash(cfg, stage=checked.stage, runtime=runtime),
        output_dir=Path(cfg.output_dir),
    )
