"""A run resolved once, at its top, before the resume check: everything that decides what it computes.

`make(cfg)` validates the config (in seconds, bench.config.validation) and returns the plan: the runtime,
the method and its validated TRL configs, the LoRA audit, a pipeline's first stage and the model the run
starts from, peft's config, the task, the settings the run declares, its config hash and the header of
its record. Resume and reuse compare the plan's hash; an isolated run's process receives the plan as it
is; setup, training, saving, evaluation and the record read it and resolve none of it again.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from bench.config import declared, finetuning, hashing, stages, validation
from bench.config.stages import Stage
from bench.config.validation import Validated
from bench.recipe.pipeline import StartModel, start_model
from bench.records import store
from bench.system import devices, distributed
from bench.tasks import Task, load_task
from methods import Method, adapter_name

if TYPE_CHECKING:
    from peft import PeftConfig
    from transformers import TrainingArguments

    from bench.measure.params import Audit
    from bench.system.runtime import Runtime


@dataclass(frozen=True)
class Plan:
    # The resolved config: the sections a phase hands on whole (the model and quant settings to load_base,
    # the eval and task settings that key the base-score cache, W&B's config). A value the plan resolved
    # (hash, stage, start model, peft, task, trainer configs, prompt budget) is read from its own field.
    config: DictConfig
    runtime: Runtime
    validated: Validated  # the method, its TRL configs, the LoRA audit, the first stage
    start: StartModel  # the model folder the run loads (a second stage's: the first stage's model)
    peft: PeftConfig | None  # peft's own config for the policy; None is full fine-tuning
    task: Task
    declared: list[str]  # the settings the run chose on purpose (fair/declared)
    prompt_budget: int  # train.max_prompt_length: every method's prompts are cut to it alike
    isolated: bool  # run in a process of its own (bench.run.supervise)
    config_hash: str
    header: dict[str, object]  # the record's first fields, written before any work
    output_dir: Path

    @property
    def method(self) -> Method:
        return self.validated.method

    def __getstate__(self) -> dict:
        # The isolated run process receives the plan pickled. A task whose rewards are closures over its data
        # (reasoning_gym's) does not pickle; that one task is built again there, from its config.
        state = dict(self.__dict__)
        try:
            pickle.dumps(self.task)
        except (pickle.PicklingError, AttributeError, TypeError):
            state["task"] = None
            state["validated"] = replace(self.validated, task=None)
        return state

    def __setstate__(self, state: dict) -> None:
        if state["task"] is None:
            state["task"] = load_task(state["config"].task)
            state["validated"] = replace(state["validated"], task=state["task"])
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @property
    def trainer_config(self) -> TrainingArguments:
        """The method's TRL config, as validated: the one its trainer is built with."""
        return self.validated.trainer_config

    @property
    def configs(self) -> dict[str, TrainingArguments]:
        """Validated configs of the trainers the adapter runs first (PPO's reward model)."""
        return self.validated.configs

    @property
    def audit(self) -> Audit:
        return self.validated.audit

    @property
    def stage(self) -> Stage | None:
        """A pipeline's first stage (init_from); None for a run from model= itself."""
        return self.validated.stage


def make(cfg: DictConfig, runtime: Runtime | None = None) -> Plan:
    """Check `cfg` and resolve it; a BenchError names the problem before anything expensive."""
    from bench.system.runtime import resolve_runtime  # heavy (torch): callers that only compose skip it

    # Under accelerate/torchrun each process is already its own (the launcher started it), and the trainer
    # must join the launcher's process group from that very process: `isolate` is moot.
    isolated = bool(cfg.isolate) and distributed.world_size() == 1
    if runtime is None:  # the run's own process's view, where it is started pinned to its GPU
        runtime = resolve_runtime(cfg.device, cfg.precision, devices.describe_run(str(cfg.device), isolated))
    checked = validation.validate(cfg, runtime)  # the task's data read and its rewards called: the plan's task
    assert checked.task is not None
    device = hashing.runtime_identity(runtime.device, runtime.precision, runtime.name)
    config_hash = hashing.config_hash(cfg, stages.identity_of(cfg, checked.stage), device)
    return Plan(
        config=cfg,
        runtime=runtime,
        validated=checked,
        start=start_model(checked.stage, str(cfg.model.name_or_path), str(cfg.cache_dir)),
        peft=finetuning.peft_config(cfg.peft),
        task=checked.task,
        declared=declared.of_run(cfg, checked.method),
        prompt_budget=int(cfg.train.max_prompt_length),
        isolated=isolated,
        config_hash=config_hash,
        header=header(cfg, config_hash, checked.stage),
        output_dir=Path(cfg.output_dir),
    )


def header(cfg: DictConfig, config_hash: str | None, stage: Stage | None) -> dict[str, object]:
    """The record's fields known before any work: what the run is (a second stage's method is its chain,
    sft→dpo), its hash (None where the plan could not be made), where and with what code it runs."""
    return {
        "status": "running",
        "method": cfg.method.name,
        "method/adapter": adapter_name(cfg.method),  # the trainer a variant reuses (dapo -> grpo)
        "model": cfg.model.name,
        # A task that is a family of datasets (reasoning_gym) is one row per dataset in the report.
        "task": f"{cfg.task.name}/{cfg.task.dataset}" if cfg.task.get("dataset") else cfg.task.name,
        "seed": int(cfg.seed),
        "quant": cfg.quant.name,
        "weights": cfg.model.weights,
        "peft/mode": finetuning.mode(cfg.peft),
        "peft/r": finetuning.rank(cfg.peft),
        "peft/target_modules": cast("dict[str, Any]", OmegaConf.to_container(cfg.peft)).get("target_modules")
        if cfg.peft
        else None,
        "config_hash": config_hash,
        # The sweep's own axes beyond the keys above: runs that differ here are different report rows.
        "overrides": grouping_overrides(cfg.get("overrides") or []),
        "dist/world_size": distributed.world_size(),  # processes of a data-parallel job (accelerate)
        "output_dir": str(cfg.output_dir),
        **store.git_info(),
        **store.versions(),
        **stages.header_of(cfg, stage),
    }


# Overrides that never make a different row: the seed (rows aggregate seeds), the keys the report
# already groups by, and where or how a run is recorded.
_NOT_AN_AXIS = (
    "seed",
    "method",
    "model",
    "task",
    "quant",
    "peft",
    "peft.r",
    "model.weights",
    "output_dir",
    "cache_dir",
    "logger",
    "isolate",
    "force",
    "experiment",
    "debug",
    "eval",
    "eval.split",
    "tuned",
    "init_from",
    "reuse",
)  # a second stage's row is its chain (sft→dpo), whichever folder the first lies in


def grouping_overrides(overrides: list[str]) -> str:
    """The overrides that define a report row, sorted: "method.args.beta=0.2 train.args.learning_rate=3e-4"."""
    kept = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in _NOT_AN_AXIS or key.startswith(("hydra.", "logger.")):
            continue
        kept.append(item.lstrip("+~"))
    return " ".join(sorted(kept))
