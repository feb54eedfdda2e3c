"""Every check that needs no weights, in seconds: a bad override fails before any model or data loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

import methods
from bench import BenchError
from bench.config import finetuning, stages
from bench.config.stages import Stage
from bench.config.trainer import build_trainer_config, trainer_kwargs, unmeasured
from bench.system import devices, distributed
from bench.system.runtime import Runtime
from bench.tasks import TASKS, Task, contract, load_task
from bench.tasks.base import SPLITS

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from bench.measure.params import Audit
    from methods import Method


@dataclass(frozen=True)
class Validated:
    """What validation learned without loading weights; the plan holds it."""

    method: Method
    trainer_config: TrainingArguments  # the method's TRL config (a TrainingArguments subclass)
    audit: Audit  # what peft builds on this architecture
    stage: Stage | None = None  # a pipeline's first stage
    configs: dict[str, TrainingArguments] = field(default_factory=dict)  # the adapter's other trainers' configs
    task: Task | None = None  # the task, built and checked (None where its data was left unread)

    # An isolated run's process receives this pickled. An adapter may hold a lambda (a `policy` or `check`), so the
    # registered adapter travels by its name and is looked up again: the same registry entry, nothing re-checked.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "method": self.method.name}

    def __setstate__(self, state: dict) -> None:
        for key, value in {**state, "method": methods.get(state["method"])}.items():
            object.__setattr__(self, key, value)
        for config in (self.trainer_config, *self.configs.values()):
            # TrainingArguments caches its device and GPU count (_setup_devices, _n_gpu) as it is built: in the
            # sweep's process, which sees every GPU of the node. The run's process, pinned to one, reads its own
            # (with 8 GPUs cached the Trainer would multiply the batch by 8 and wrap the model in DataParallel).
            vars(config).pop("_setup_devices", None)
            vars(config).pop("_n_gpu", None)
            # Counted again now, before any Accelerator exists: setting the devices up resets accelerate's state,
            # which would undo an Accelerator the Trainer had already made.
            _ = config.n_gpu


def validate(cfg: DictConfig, runtime: Runtime, task_data: bool = True) -> Validated:
    """Every check that needs no weights, in seconds, in the order a user fixes them: what the run names
    (method, task, device, model, data), how it scores (the task built and its rewards called on its first
    row), how it trains, then TRL's and peft's own checks (the method's config, the fine-tuning mode
    wrapped on the meta device). `task_data=False` leaves the task's data unread (an estimate needs none)."""
    from bench.config.audit import audit_config

    method = _method(cfg)
    _task(cfg)
    _device(runtime)
    _inputs(cfg)
    _evaluation(cfg)
    task = _task_contract(cfg) if task_data else None
    _reward_model(cfg, runtime)
    _rollout(cfg, method, runtime)
    stage = stages.load(cfg)  # init_from: a finished run on this base, with its weights (reads files only)
    _quantization(cfg)
    audit = audit_config(cfg)  # peft's own wrap on the meta device: a bad target fails here, in seconds
    args = _trainer_config(cfg, runtime, method)
    return Validated(method, args, audit, stage, _side_configs(cfg, method, args), task)


def _method(cfg: DictConfig):
    """The registered adapter the method's YAML names, available in the installed TRL."""
    try:
        method = methods.get(methods.adapter_name(cfg.method))
    except KeyError as err:
        fix = (
            f"conf/method/{cfg.method.name}.yaml names `adapter: {cfg.method.adapter}`: name a registered one"
            if cfg.method.get("adapter")
            else f"conf/method/{cfg.method.name}.yaml exists, so add its adapter file in methods/, or make it a "
            "variant of a registered one with `adapter:`"
        )
        raise BenchError(f"{err.args[0]} {fix} (see docs/adding-a-method.md).") from err
    why = method.unavailable()
    if why is not None:
        raise BenchError(why)
    return method


def _task(cfg: DictConfig) -> None:
    if cfg.task.name not in TASKS.names():
        raise BenchError(
            f"{TASKS.unknown(cfg.task.name)} conf/task/ names it, so add its file in bench/tasks/ "
            "(see docs/adding-a-task.md)."
        )


def _device(runtime: Runtime) -> None:
    if runtime.device == "cuda":
        devices.one_gpu_per_run(runtime.gpus_visible, runtime.index, launched=distributed.world_size() > 1)


def _inputs(cfg: DictConfig) -> None:
    """The budget, the model and the data the run names."""
    if int(cfg.train.num_prompts) < 1 or int(cfg.train.max_completion_length) < 1:
        raise BenchError("train.num_prompts and train.max_completion_length must be positive.")
    if cfg.model.weights not in ("pretrained", "random"):
        raise BenchError(f"model.weights must be 'pretrained' or 'random'; got {cfg.model.weights!r}.")
    path = str(cfg.model.name_or_path)
    if path.startswith((".", "/", "~")) and not Path(path).expanduser().is_dir():
        raise BenchError(f"model.name_or_path={path!r} looks like a local folder but does not exist.")
    if cfg.task.get("data_dir"):
        data_dir = Path(cfg.task.data_dir).expanduser()
        missing = [s for s in ("train.jsonl", "test.jsonl") if not (data_dir / s).is_file()]
        if missing:
            raise BenchError(
                f"task.data_dir={str(data_dir)!r} lacks {', '.join(missing)}; it must hold train.jsonl and test.jsonl."
            )


def _evaluation(cfg: DictConfig) -> None:
    """The split scored, how the adapter is scored, and the data's label noise."""
    if cfg.eval.split not in SPLITS:
        raise BenchError(
            f"eval.split={cfg.eval.split!r}: score on one of {', '.join(SPLITS)} (validation for choices such "
            "as a tuned learning rate, test for what is reported)."
        )
    noise = cfg.data.label_noise
    if not isinstance(noise, (int, float)) or not 0.0 <= float(noise) <= 0.5:
        raise BenchError(
            f"data.label_noise={noise!r}: a rate in [0, 0.5] at which each preference pair (and its two KTO "
            "labels) is flipped; 0.5 makes the labels coin flips, above that they would mean the opposite."
        )
    if cfg.eval.path not in ("merged", "adapter"):
        raise BenchError(
            f"eval.path={cfg.eval.path!r}: merged (score the adapter merged into its base, the default) or "
            "adapter (score it unmerged, as trained)."
        )


def _task_contract(cfg: DictConfig) -> Task:
    """The task built (its data read: a bad file is named here) and its reward functions and other
    callables called on its first training row as TRL and the harness call them (bench.tasks.contract),
    so a wrong signature fails in seconds, not once training starts; and the held-out split scored."""
    task = load_task(cfg.task)
    contract.check(task)
    task.prompts(int(cfg.train.num_prompts))
    if cfg.eval.enabled:
        task.split(cfg.eval.split)
    return task


def _reward_model(cfg: DictConfig, runtime: Runtime) -> None:
    if cfg.method.get("reward") == "model" and runtime.precision != "fp32":
        # PPO scores with the trained reward adapter merged into its base. Merged into bf16 or fp16 weights, a
        # small trained delta is mostly rounded away, and merging in fp32 and then casting rounds it the same
        # way (the cast is the rounding): only fp32 weights keep it, as eval.path's merge finds.
        raise BenchError(
            f"method.reward=model at precision={runtime.precision}: PPO scores with the trained reward adapter "
            f"merged into its base, and merged into {runtime.precision} weights a small trained delta is rounded "
            "away, so the rewards would not be the trained model's. Use precision=fp32 with method.reward=model, "
            "or method.reward=rule (the task's reward, the default)."
        )
    if cfg.method.get("reward") == "model" and cfg.quant.name != "none":
        # Measured on CPU (tiny model, fp32): TRL's RewardTrainer casts the QLoRA score head to bf16 and its
        # first step fails on a dtype mismatch; and merging the trained reward adapter into 4- or 8-bit
        # weights would round it away, as eval.path's merge refuses to.
        raise BenchError(
            f"method.reward=model with quant={cfg.quant.name}: PPO's trained reward model does not work on a "
            "quantized base yet. Use method.reward=rule (the task's reward, the default) or quant=none."
        )


def _rollout(cfg: DictConfig, method, runtime: Runtime) -> None:
    rollout = cfg.train.rollout
    if rollout not in ("trl", "merged"):
        raise BenchError(f"train.rollout={rollout!r}: trl (TRL's own rollout, the default) or merged.")
    if rollout == "merged":
        why = (
            "it does not generate while training"
            if not method.sampling
            else "full fine-tuning has no adapter to merge"
            if finetuning.is_full(cfg.peft)
            else f"merging into {cfg.quant.name} weights rounds them, so its rollouts would not be the adapter's"
            if cfg.quant.name != "none"
            # Merge then unmerge in bf16/fp16 rounds the frozen base twice per rollout, and the error
            # accumulates over a run: the base would drift. fp32 rounds ~1e-7 (train/frozen_max_rel_change).
            else f"merging and unmerging in {runtime.precision} rounds the frozen weights at every rollout, "
            "so they drift over the run (precision=fp32 keeps them)"
            if runtime.precision != "fp32"
            else None
        )
        if why:
            raise BenchError(f"train.rollout=merged with method={cfg.method.name}: {why}. Use train.rollout=trl.")


def _quantization(cfg: DictConfig) -> None:
    if cfg.quant.name not in ("none", "nf4", "int8"):
        raise BenchError(f"quant={cfg.quant.name!r} is not one of none, nf4, int8.")
    if cfg.quant.name != "none" and finetuning.is_full(cfg.peft):
        raise BenchError(
            f"quant={cfg.quant.name} with peft=none asks to fully fine-tune a quantized base, whose "
            "weights cannot be trained. Use quant=none for full fine-tuning, or an adapter (peft=lora) "
            "on the quantized base (QLoRA)."
        )


def _trainer_config(cfg: DictConfig, runtime: Runtime, method):
    """The method's TRL config, built by its own class and checked as its trainer would check it."""
    kwargs = trainer_kwargs(cfg, runtime, method)
    unmeasured(kwargs, cfg.method.name)
    args = build_trainer_config(method.config_class, kwargs, cfg.method.name)
    if method.check is not None:
        try:
            method.check(args)
        except ValueError as err:
            raise BenchError(
                f"method={cfg.method.name}: {method.config_class.__name__} rejected the settings: {err}"
            ) from err
    return args


def _side_configs(cfg: DictConfig, method, args) -> dict:
    """The configs of the trainers an adapter runs before its own (PPO's reward model), checked alike."""
    configs = {}
    for name, (spec, side_kwargs) in (
        method.side_configs(args, OmegaConf.to_container(cfg.method, resolve=True)) if method.side_configs else {}
    ).items():
        label = f"{cfg.method.name} ({name})"
        unmeasured(side_kwargs, label)
        configs[name] = build_trainer_config(methods.load_class(spec), side_kwargs, label)
    return configs
