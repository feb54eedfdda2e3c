"""Training one method the same way as every other: shared LoRA, shared data, shared measurements."""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench import data as data_pipeline
from bench.metrics import MemorySampler, StepTimer, TokenCounter, weight_checksums, weights_changed
from bench.models import Runtime, load_base, load_tokenizer, model_key, resolve_model_path
from bench.params import count_params, lora_audit
from bench.tasks import load_task
from methods import Method, RunContext

log = logging.getLogger(__name__)


def lora_config(peft_cfg: DictConfig, task_type: str = "CAUSAL_LM"):
    from peft import LoraConfig

    return LoraConfig(
        r=int(peft_cfg.r),
        lora_alpha=float(peft_cfg.alpha),
        lora_dropout=float(peft_cfg.dropout),
        bias=peft_cfg.bias,
        target_modules=list(peft_cfg.target_modules),
        task_type=task_type,
    )


def load_adapted(
    path: str, runtime: Runtime, cfg: DictConfig, head: str = "causal_lm", pad_token_id: int | None = None
):
    """A base model with the run's dtype/quantization, wrapped in the shared LoRA config."""
    from peft import get_peft_model

    model = load_base(cfg, path, runtime, head=head)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    # A value/reward head (SEQ_CLS) also trains its new `score` layer; the backbone stays LoRA-only.
    return get_peft_model(model, lora_config(cfg.peft, "CAUSAL_LM" if head == "causal_lm" else "SEQ_CLS"))


def train(cfg: DictConfig, runtime: Runtime, method: Method, trainer_config, out: Path) -> dict:
    path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
    tokenizer = load_tokenizer(path, cfg.model.revision)
    task = load_task(cfg.task)
    examples = task.prompts(int(cfg.train.num_prompts))
    result = {
        "train/prompts": len(examples),
        "data/prompts_fingerprint": data_pipeline.prompts_fingerprint(task, examples),
    }

    base = load_base(cfg, path, runtime)
    base.config.pad_token_id = tokenizer.pad_token_id
    if base.generation_config is not None:
        base.generation_config.pad_token_id = tokenizer.pad_token_id
    offline: dict = {}

    def dataset(kind: str):
        if kind == "prompts":
            return data_pipeline.prompts_dataset(task, examples)
        if kind == "prompt_ids":
            return data_pipeline.prompt_ids_dataset(task, examples, tokenizer)
        if "data" not in offline:  # built from the base model, before any adapter exists
            built = data_pipeline.offline_data(
                base,
                tokenizer,
                task,
                examples,
                cfg.data,
                int(cfg.seed),
                model_key(cfg, path, runtime),
                cfg.cache_dir,
            )
            offline["data"] = built
            result["data/preference_fingerprint"] = built.fingerprint
            result.update({f"data/{k}": v for k, v in vars(built.stats).items()})
        from datasets import Dataset

        rows = offline["data"].pairs if kind == "preference" else offline["data"].unpaired
        if not rows:
            raise BenchError(
                f"The {kind} data is empty: every prompt's samples tied and none could fall back "
                "to the gold answer; raise data.samples_per_prompt or train.num_prompts"
            )
        return Dataset.from_list(rows)

    train_dataset = dataset(method.data)
    timer = StepTimer()
    ctx = RunContext(
        model=base,
        tokenizer=tokenizer,
        peft_config=lora_config(cfg.peft),
        args=trainer_config,
        dataset=train_dataset,
        reward_funcs=task.reward_funcs,
        reward_weights=list(task.reward_weights.values()),
        score=task.score,
        callbacks=[timer],
        method_cfg=OmegaConf.to_container(cfg.method, resolve=True),
        load_model=partial(load_adapted, path, runtime, cfg, pad_token_id=tokenizer.pad_token_id),
        data=dataset,
    )
    counter = TokenCounter(base)  # the embeddings are not adapted: the hook survives PEFT's wrapping
    try:
        trainer = method.build(ctx)
        model = method.policy(trainer)
        if not hasattr(model, "peft_config") or len(model.peft_config) != 1:
            raise RuntimeError(
                f"method {method.name}: the trainer's policy should carry exactly the shared LoRA "
                f"adapter; found {getattr(model, 'peft_config', None)}. Pass ctx.peft_config to the trainer."
            )
        trainable, total = count_params(model)
        audit = lora_audit(model, int(cfg.peft.r), list(cfg.peft.target_modules))
        result.update({"params/trainable": trainable, "params/total": total, **audit.as_metrics()})
        before = weight_checksums(model)
        with MemorySampler(runtime.device) as memory:
            start = time.perf_counter()
            trainer.train()
            wall = time.perf_counter() - start
    finally:
        counter.close()
    args = trainer_config
    samples = len(timer.step_times) * args.per_device_train_batch_size * args.gradient_accumulation_steps
    result.update(weights_changed(before, weight_checksums(model)))
    result.update({f"method/{k}": v for k, v in ctx.extra.items()})  # what the adapter reported building
    result.update(memory.metrics())
    result.update(timer.metrics(wall, counter.tokens, samples))
    (out / "train_log.json").write_text(json.dumps(timer.logs, indent=1, default=str))

    adapter_dir = out / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    result["train/adapter_bytes"] = sum(f.stat().st_size for f in adapter_dir.glob("adapter_model.*"))
    result["model/path"] = path
    return result
