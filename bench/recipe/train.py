"""The training recipe, one method the same way as every other. It reads top to bottom in phases:

    setup  tokenizer, task prompts, base model, the method's dataset (offline data built or cached)
    build  the adapter maps the run context onto its TRL trainer (PPO's reward model trains here)
    train  trainer.train(), measured (memory sampler, step timer, token counter, divergence guard)
    save   the adapter (or the full weights, for peft=none)

Each phase's wall time and peak memory are recorded (`time/<phase>_s`, `sys/peak_mem_<phase>_bytes`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from bench import BenchError
from bench.config import finetuning
from bench.config.fit import warn_if_it_cannot_fit
from bench.measure import probes
from bench.measure.metrics import (
    DivergenceGuard,
    MemorySampler,
    SavedTensors,
    StepTimer,
    live_memory,
    memory_breakdown,
    weight_checksums,
    weights_changed,
)
from bench.measure.params import count_params
from bench.measure.perf import Counted, TokenKinds, flop_params, other_models, perf_metrics, weight_bytes
from bench.recipe import data as data_pipeline
from bench.recipe import dtypes, pipeline
from bench.recipe.models import load_base, load_tokenizer, model_key
from bench.recipe.plan import Plan
from bench.system import cache, console, distributed, signals
from bench.system.runtime import Runtime
from bench.tasks import Example, Task
from methods import RunContext

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)


@contextmanager
def phase(name: str, device: str, result: dict):
    """Time a phase and sample its memory: `time/<name>_s` and `sys/peak_mem_<name>_bytes`."""
    log.info("phase: %s", name)
    signals.set_phase(name)  # what an interrupted run's record names
    started = time.perf_counter()
    with MemorySampler(device) as memory:
        yield memory
    result[f"time/{name}_s"] = round(time.perf_counter() - started, 3)
    result[f"sys/peak_mem_{name}_bytes"] = memory.peak()


def load_policy_copy(path: str, runtime: Runtime, cfg: DictConfig, head: str = "causal_lm", pad_token_id=None):
    """Another copy of the base (PPO's value or reward model), in the run's fine-tuning mode."""
    model = load_base(cfg, path, runtime, head=head)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    # A value/reward head (SEQ_CLS) also trains its new `score` layer; the backbone follows peft=...
    config = finetuning.peft_config(cfg.peft, "CAUSAL_LM" if head == "causal_lm" else "SEQ_CLS")
    if config is None:
        return model
    from peft import get_peft_model

    model = get_peft_model(model, config)
    dtypes.settle_dtypes(model, runtime.dtype)  # the head trains in fp32 (a reward model's, before PPO)
    return model


@dataclass
class Setup:
    path: str
    tokenizer: PreTrainedTokenizerBase
    task: Task
    examples: list[Example]
    base: PreTrainedModel
    dataset: Dataset
    datasets: Callable[[str], Dataset]  # kind -> Dataset, for adapters that need a second kind (PPO's reward model)
    generations: probes.GenerationRecorder  # the sampling settings every generate() call used
    offline: dict  # {"data": OfflineData} once the method's offline data is built or loaded
    measured: dict  # data/* and pipeline/* figures, the offline data's as soon as an adapter asks for it


def setup(plan: Plan) -> Setup:
    """The model folder, tokenizer, task, prompts (cut to the budget), base model and the method's data.
    What it measured (the prompt budget's effect, the offline data's build) is in `Setup.measured`."""
    cfg, runtime, method, task = plan.config, plan.runtime, plan.method, plan.task
    # A second stage (init_from) starts from the first stage's model: the base from here on, for the
    # policy, its reference, PPO's value and reward models and the offline data alike.
    result: dict = pipeline.ensure(plan.start)
    path = plan.start.path
    tokenizer = load_tokenizer(path, cfg.model.revision)
    examples = task.prompts(int(cfg.train.num_prompts))
    # One prompt budget for every method, applied here, before any model loads or any data is built.
    examples, fit = data_pipeline.fit_prompts(
        task, examples, tokenizer, plan.prompt_budget, str(cfg.train.prompt_overflow)
    )
    result.update(fit.record())
    # Before any weights load: a step that clearly cannot fit is said with its figures.
    warn_if_it_cannot_fit(cfg, runtime, plan.validated, min(fit.longest, fit.budget))
    result["train/prompts"] = len(examples)
    result["data/prompts_fingerprint"] = data_pipeline.prompts_fingerprint(task, examples)
    base = load_base(cfg, path, runtime)
    base.config.pad_token_id = tokenizer.pad_token_id
    if base.generation_config is not None:
        base.generation_config.pad_token_id = tokenizer.pad_token_id
    # Every generate() call (the offline builder's, TRL's rollouts through peft's wrappers) is seen here.
    generations = probes.GenerationRecorder(base)
    offline: dict = {}

    def dataset(kind: str):
        if kind in ("preference", "unpaired") and "data" not in offline:
            # Built from the base model before any adapter exists; cached and shared across methods.
            built = data_pipeline.offline_data(
                base,
                tokenizer,
                task,
                examples,
                cfg.data,
                cfg.sampling,
                int(cfg.seed),
                model_key(cfg, path, runtime),
                cfg.cache_dir,
                observe=lambda: generations.settings("setup"),
            )
            offline["data"] = built
            result["data/preference_fingerprint"] = built.fingerprint
            result["data/build_s"], result["data/build_cached"] = built.build_s, built.cached
            result.update({f"data/{k}": v for k, v in vars(built.stats).items()})
        return data_pipeline.dataset(kind, task, examples, tokenizer, offline.get("data"))

    return Setup(path, tokenizer, task, examples, base, dataset(method.data), dataset, generations, offline, result)


def build(plan: Plan, s: Setup, callbacks: list):
    cfg, runtime, method = plan.config, plan.runtime, plan.method
    extra: dict = {}
    ctx = RunContext(
        model=s.base,
        tokenizer=s.tokenizer,
        peft_config=plan.peft,
        args=plan.trainer_config,
        configs=dict(plan.configs),
        dataset=s.dataset,
        reward_funcs=s.task.reward_funcs,
        reward_weights=list(s.task.reward_weights.values()),
        score=s.task.score,
        callbacks=callbacks,
        method_cfg=cast("dict[str, Any]", OmegaConf.to_container(cfg.method, resolve=True)),
        load_model=partial(load_policy_copy, s.path, runtime, cfg, pad_token_id=s.tokenizer.pad_token_id),
        data=s.datasets,
        check_rows=lambda handed, inner: extra.update(
            {
                f"reward_model_{k.split('/')[-1]}": v
                for k, v in rows_kept(f"{method.name} (its reward model)", handed, inner).items()
            }
        ),
        fields=[ex.fields for ex in s.examples],
        extra=extra,
    )
    # TRL wraps the model in peft before the Trainer seeds anything: seed here, so the adapter's
    # initialisation depends on the run's seed alone (not on whether the offline data was cached).
    from transformers import set_seed

    set_seed(int(cfg.seed))
    trainer = method.build(ctx)
    console.quiet_trainer(trainer)  # its log lines to run.log; its progress bar stays
    record = rows_kept(method.name, len(s.dataset), trainer)  # before anything else: no silent drops
    if cfg.train.disable_dropout:
        # TRL's own switch did this where the config has one; SFT has none, so the harness does it the
        # same way for every trainer (every model it keeps: policy, value, reference).
        for module in (trainer.model, getattr(trainer, "ref_model", None)):
            if module is not None:
                probes.disable_dropout(module)
    # After TRL's own casts (QLoRA's adapter to bf16, PPO's 4-bit norms to fp32): one rule for all, the
    # frozen reference copies included (TRL loads a full fine-tune's reference in fp32 and PPO copies the
    # fp32 policy for it: frozen, they belong in the run's dtype like every other frozen weight).
    record.update(dtypes.settle_dtypes(trainer.model, runtime.dtype))
    if (reference := getattr(trainer, "ref_model", None)) is not None:
        synced = bool(getattr(trainer.args, "sync_ref_model", False))
        record["train/reference_dtypes"] = dtypes.settle_reference(reference, runtime.dtype, synced)
    model = method.policy(trainer)
    if cfg.train.rollout == "merged":
        merged_rollouts(model)
    adapters = getattr(model, "peft_config", None)
    if ctx.peft_config is not None and (adapters is None or len(adapters) != 1):
        raise RuntimeError(
            f"method {method.name}: the trainer's policy should carry exactly the shared adapter; "
            f"found {adapters}. Pass ctx.peft_config to the trainer."
        )
    return trainer, model, ctx.extra, record  # record: the harness's own keys; extra: what the adapter reported


def rows_kept(method: str, handed: int, trainer) -> dict:
    """Compare the trainer's training set with what the harness handed it: a TRL trainer's own
    preprocessing (a length limit, a format check) may drop rows. Said before training, and recorded;
    none left is an error naming the cause, not a sampler's `num_samples=0` later."""
    data = getattr(trainer, "train_dataset", None)
    if data is None or not hasattr(data, "__len__"):
        return {}
    kept = len(data)
    if kept >= handed or getattr(trainer.args, "packing", False):  # packed rows are fewer, none lost
        return {"data/trainer_rows": kept}
    name, limit = type(trainer).__name__, getattr(trainer.args, "max_length", None)
    if kept == 0:
        raise BenchError(
            f"method={method}: {name} dropped all {handed} training rows the harness handed it while preparing "
            f"them (its max_length: {limit}), so nothing would train. Each method's max_length follows "
            "train.max_prompt_length + train.max_completion_length; a smaller method.args.max_length cuts rows: "
            "remove it, or raise train.max_prompt_length."
        )
    log.warning(
        "method=%s: %s dropped %d of the %d training rows it was handed (its max_length: %s); it trains "
        "on the other %d",
        method,
        name,
        handed - kept,
        handed,
        limit,
        kept,
    )
    return {"data/trainer_rows": kept, "data/dropped_by_trainer": handed - kept}


def merged_rollouts(policy) -> None:
    """Generate from merged weights: merge the adapter, generate, unmerge (TRL's vLLM path does the same
    around its weight sync). The policy's `generate` is wrapped on the instance, which TRL's rollout
    calls (on the unwrapped peft model); a LoRA layer with merged weights runs its base layer alone."""
    original = policy.generate

    def generate(*args, **kwargs):
        policy.merge_adapter()
        try:
            return original(*args, **kwargs)
        finally:
            policy.unmerge_adapter()

    policy.generate = generate


@dataclass
class Trained:
    """What training left to measure: the trainer, its policy, and the measuring hooks' readings."""

    trainer: object
    model: object  # the policy (method.policy(trainer))
    extra: dict  # what the adapter reported building
    before: dict  # the trained weights' checksums before the first step
    memory: MemorySampler  # the train phase's sampler
    saved: SavedTensors
    counter: TokenKinds
    others: dict  # name -> (model, its TokenKinds): the models it runs beside the policy (PPO's value model)


def train(plan: Plan) -> dict:
    """setup → build → train → save; returns the run's metrics (phase times and memory included)."""
    runtime, out = plan.runtime, plan.output_dir
    result: dict = {}
    timer, probe = StepTimer(), probes.DropoutProbe()
    runtime_bytes = live_memory(runtime.device)  # the process before any model: interpreter, libraries
    with phase("setup", runtime.device, result):
        s = setup(plan)
    done = _build_and_train(plan, s, [timer, DivergenceGuard(), probe], probe, result)
    result.update(s.measured)
    result.update(fair_record(plan, done.trainer, probe, s))
    result.update(weights_changed(done.before, weight_checksums(done.model)))
    result.update({f"method/{k}": v for k, v in done.extra.items()})
    result.update(done.memory.metrics())
    result.update(
        memory_breakdown(
            done.trainer,
            result["sys/peak_mem_bytes"],
            runtime_bytes,
            runtime.device,
            saved=done.saved.metrics(),
            kv_cache=s.generations.kv_cache_bytes("train"),
            during=done.memory.peak_activity(),
        )
    )
    result.update(_throughput(plan, s, done, timer, result))
    if not distributed.is_main():  # one job, one record and one saved adapter: rank 0's
        return result
    cache.write_json(out / "train_log.json", timer.logs, indent=1)
    with phase("save", runtime.device, result):
        result.update(save(done.model, s.tokenizer, plan))
    return result


def _build_and_train(plan: Plan, s: Setup, callbacks: list, probe, result: dict) -> Trained:
    """Build the method's trainer and train it, under the measuring hooks (phases build and train)."""
    counter = TokenKinds(s.base)  # embeddings are never adapted: the hook survives peft's wrapping
    others: dict = {}
    try:
        with phase("build", plan.runtime.device, result):
            trainer, model, extra, built = build(plan, s, callbacks)
        others = {name: (m, TokenKinds(m)) for name, m in other_models(trainer).items()}
        probe.model = trainer.model  # PPO's: policy and value together
        s.generations.phase = "train"
        trainable, total = count_params(model)
        result.update({"params/trainable": trainable, "params/total": total})
        # In what the weights live: trained ones in fp32 (master weights), frozen ones in the run's dtype.
        result.update(built)
        if trainable != plan.audit.exact:
            log.warning("trainable %d differs from the audit's %d", trainable, plan.audit.exact)
        before = weight_checksums(model)
        saved = SavedTensors([trainer.model, getattr(trainer, "ref_model", None)], s.base.config.vocab_size)
        trainer.add_callback(_ResetEachStep(saved))
        with phase("train", plan.runtime.device, result) as memory, saved, console.prints_to_log():
            trainer.train()
    finally:
        counter.close()
        for _, kinds in others.values():
            kinds.close()
        s.generations.close()
    return Trained(trainer, model, extra, before, memory, saved, counter, others)


def _throughput(plan: Plan, s: Setup, done: Trained, timer: StepTimer, result: dict) -> dict:
    """Steps, samples and tokens per second, and the model FLOP/s against the machine's peak (a
    data-parallel job's: every process's tokens and memory summed)."""
    runtime, args = plan.runtime, plan.trainer_config
    wall = result["time/train_s"]
    samples = len(timer.step_times) * args.per_device_train_batch_size * args.gradient_accumulation_steps
    out: dict = {}
    tokens = dict(done.counter.tokens)
    # The other models' tokens travel as "<name>/<kind>", so a data-parallel job sums them with the policy's.
    tokens.update({f"{name}/{kind}": n for name, (_, kinds) in done.others.items() for kind, n in kinds.tokens.items()})
    if distributed.world_size() > 1:
        totals, tokens = job_totals(result, tokens)
        out.update(totals)
        samples *= distributed.world_size()
    others = {
        name: _counted(m, {kind: tokens.pop(f"{name}/{kind}") for kind in kinds.tokens})
        for name, (m, kinds) in done.others.items()
    }
    out.update(timer.metrics(wall, sum(tokens.values()), samples))
    out.update({f"train/tokens_{kind}": n for kind, n in tokens.items()})
    out.update(
        perf_metrics(
            params=flop_params(done.model, result["params/total"]),
            trainable=result["params/trainable"],
            tokens=tokens,
            train_s=wall,
            device=runtime.device,
            dtype=runtime.dtype,
            cache_dir=plan.config.cache_dir,
            decode=done.counter.decode,
            decode_bytes=weight_bytes(done.model),
            world_size=distributed.world_size(),
            device_name=torch.cuda.get_device_name(runtime.index) if runtime.device == "cuda" else None,
            others=others,
        )
    )
    out["model/path"] = s.path
    # A mixture of experts reads TRL's router_aux_loss_coef; a dense model does not (the audit skips it).
    out["model/moe"] = any(
        getattr(s.base.config, k, 0) for k in ("num_experts", "num_local_experts", "n_routed_experts")
    )
    return out


def _counted(model, tokens: dict[str, int]) -> Counted:
    """A model run beside the policy, for the FLOP rule: its matmul parameters, trained ones and tokens."""
    trainable, total = count_params(model)
    return Counted(flop_params(model, total), trainable, tokens)


class _ResetEachStep(TrainerCallback):
    """Every graph is gone after an optimizer step: SavedTensors starts the next step from zero."""

    def __init__(self, saved: SavedTensors):
        self.saved = saved

    def on_step_end(self, args, state, control, **kwargs):
        self.saved.reset()


def fair_record(plan: Plan, trainer, probe, s: Setup) -> dict:
    """What applied, read from the built trainer and model (bench.report.audit): the audit compares these."""
    method = plan.method
    out = {
        "fair/trl_config": probes.trl_config(trainer.args),
        "fair/declared": plan.declared,
        "fair/dropout": probe.largest,
        "fair/max_prompt_length": plan.prompt_budget,
    }
    # Which generation path each phase took (bench.studies.decode names them): TRL's own rollout on the
    # unmerged adapter in train mode, and the offline builder's samples from the base itself.
    out["gen/path"] = plan.config.train.rollout if method.sampling else "none"
    if "data" in s.offline:
        out["gen/data_path"] = "base"
    if method.sampling:  # an online method: its rollouts
        out.update(s.generations.settings("train"))
    elif "data" in s.offline:  # an offline method: the samples its data was built from
        out.update(s.offline["data"].generation or {})
    return out


def job_totals(result: dict, tokens: dict[str, int]) -> tuple[dict, dict[str, int]]:
    """A data-parallel job's memory and tokens: every process's, summed.

    Each process holds its own copy of the models and its own batch shard, so the job's peak is the
    sum of the processes' peaks and each memory part sums the same way (the parts still add up to
    the peak); the per-process peaks are kept in `dist/peak_mem_per_rank_bytes`. Returns the summed
    memory figures (to replace this process's) and the summed token counts; the wall time is the
    job's (the processes step in lockstep).
    """
    mine = {k: v for k, v in result.items() if k.startswith(("sys/peak_mem", "mem/")) and isinstance(v, int)}
    shards = distributed.gather({"memory": mine, "tokens": tokens})
    totals = {key: sum(shard["memory"].get(key, 0) for shard in shards) for key in mine}
    totals["dist/world_size"] = len(shards)
    totals["dist/peak_mem_per_rank_bytes"] = [shard["memory"].get("sys/peak_mem_bytes") for shard in shards]
    return totals, {kind: sum(shard["tokens"].get(kind, 0) for shard in shards) for kind in tokens}


def save(model, tokenizer, plan: Plan) -> dict:
    """The adapter (LoRA: adapter/), or every weight (full fine-tuning: model/), with the tokenizer;
    the adapter names its base by identity (bench.recipe.cards), so that it loads on other machines."""
    from bench.recipe import cards

    folder = plan.output_dir / ("model" if plan.peft is None else "adapter")
    tmp = folder.with_name(folder.name + ".tmp")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cards.stamp(tmp, plan)
    except BaseException:  # a full disk mid-save: no half folder left behind (the record says why)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache.replace_dir(tmp, folder)  # a crash mid-save leaves no half adapter that a rescore would trust
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {"train/weights_dir": folder.name, "train/adapter_bytes": size}


def weights_dir(out: Path) -> Path:
    """Where a finished run's trained weights are: adapter/ (an adapter) or model/ (full fine-tuning)."""
    for name in ("adapter", "model"):
        if (out / name).is_dir():
            return out / name
    raise BenchError(f"{out} holds neither adapter/ nor model/: the run saved no weights.")
