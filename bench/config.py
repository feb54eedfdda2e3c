"""Composing the config outside Hydra's main, checking it, and turning it into a TRL config.

Everything here is cheap: a bad override must fail in seconds, before any model or data loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.recipe.models import Runtime
from bench.system import devices, distributed, files

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# `${rft.sum:a,b,...}`: conf/config.yaml derives each method's max_length from the prompt budget with it.
OmegaConf.register_new_resolver("rft.sum", lambda *terms: sum(int(t) for t in terms), replace=True)
# Keys that say where or how a run is recorded, not what it computes: left out of config_hash.
_NON_SEMANTIC = ("output_dir", "cache_dir", "logger", "isolate", "force", "overrides", "reuse")


# The tuned table's entries for one fine-tuning mode of a method, laid over the method's own: `dpo+full`
# for full fine-tuning (peft=none), `sft+lora` for adapter runs (any peft config). Full fine-tuning's best
# rate is an order of magnitude below LoRA's, so a LoRA-vs-full comparison at one rate measures the rate,
# not the fine-tuning (conf/experiment/claims/lora_memory.yaml).
FULL_ENTRY, ADAPTER_ENTRY = "+full", "+lora"
MODE_ENTRIES = (FULL_ENTRY, ADAPTER_ENTRY)


def tuned_settings(cfg: DictConfig) -> dict:
    """{dotted key: value} the tuned table sets for this run: its method's entry, with the entry for its
    mode over it (`<method>+full` for peft=none, `<method>+lora` for an adapter)."""
    from bench.recipe.finetuning import is_full

    table = cfg.get("tuned") or {}
    if isinstance(table, str):
        return {}
    settings = dict(table.get(cfg.method.name) or {})
    mode = FULL_ENTRY if is_full(cfg.get("peft")) else ADAPTER_ENTRY
    settings.update(table.get(cfg.method.name + mode) or {})
    return settings


def apply_tuned(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """Apply `tuned[<method name>]` ({dotted key: value}, from a tuning study) to `cfg`, in place.

    `tuned` may also name a YAML file holding the table (`tuned: {...}`), as a tuning study writes it.
    A key the command line sets itself (`overrides`, else the run's recorded `cfg.overrides`) keeps the
    command line's value: `experiment=tuned train.args.learning_rate=1e-5,3e-5` sweeps the rate at the
    other tuned settings (how full fine-tuning's rate is tuned at LoRA's tuned beta), where the table
    would otherwise overwrite it silently. Idempotent, so composing and running may both call it. An
    unknown key fails here, before any work.
    """
    table = cfg.get("tuned") or {}
    if isinstance(table, str):  # a study's tuned.yaml (bench.studies.tune): its values replace the path
        path = Path(table).expanduser()
        if not path.is_file():
            raise BenchError(f"tuned={table!r} is not a file; pass a tuning study's tuned.yaml, or a mapping.")
        loaded = files.read_yaml(path, "Fix it, or rerun the tuning study that wrote it.")
        table = loaded.get("tuned", loaded)
        cfg.tuned = table
    settings = tuned_settings(cfg)
    given = {o.split("=", 1)[0].lstrip("+~") for o in (overrides if overrides is not None else cfg.get("overrides") or [])}
    for key, value in settings.items():
        if key in given:
            continue
        parent = key.rsplit(".", 1)[0] if "." in key else None
        if parent and OmegaConf.select(cfg, parent) is None:
            raise BenchError(
                f"tuned.{cfg.method.name}: {key!r} names no setting of this config ({parent} is absent); "
                "rerun the tuning study or fix conf/experiment/tuned.yaml."
            )
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    return cfg


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The root config with overrides, as `python -m bench` would see it (for tools and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)
    # ${hydra:...} resolvers only work inside a Hydra app; pin the output dir to a plain value.
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(cfg.output_dir) if "output_dir" in cfg else None
    del cfg["hydra"]
    return apply_tuned(cfg, list(overrides or []))


# Keys added after runs were recorded, with the value that leaves a run as it was: at that value they
# are left out of the hash, so that every earlier run still resumes (and is found by `reuse`).
_OFF = {"init_from": None, "data.label_noise": 0.0, "train.rollout": "trl", "eval.path": "adapter",
        # The prompt budget at its default (432 + 64 + 16 = the 512 every max_length had before it).
        "train.max_prompt_length": 432, "train.prompt_overflow": "truncate", "train.max_length": 512}


def config_hash(cfg: DictConfig) -> str:
    from bench.recipe import pipeline

    data = OmegaConf.to_container(cfg, resolve=True)
    for key in _NON_SEMANTIC:
        data.pop(key, None)
    for dotted, off in _OFF.items():
        *parents, key = dotted.split(".")
        node = data
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node and node[key] == off:
            del node[key]
    # Mode entries (`grpo+full`, `sft+lora`) were added to tables after runs were recorded: what they set
    # is hashed through the values they set (the learning rate in train.args), so the entries themselves
    # are left out, and every other run of a table that gains them keeps its hash (resumes, is reused).
    if isinstance(data.get("tuned"), dict):
        data["tuned"] = {k: v for k, v in data["tuned"].items() if not str(k).endswith(MODE_ENTRIES)}
        # A tuned init_from (a pipeline's second stage: `${hydra:sweep.dir}/*_sft_seed0`) is spelled as the
        # sweep dir was given: hashed relative to the working directory, so that `hydra.sweep.dir=results/x`
        # and its absolute spelling give one hash and a sweep resumes whichever way it is named.
        for entry in data["tuned"].values():
            start = Path(entry["init_from"]) if isinstance(entry, dict) and isinstance(entry.get("init_from"), str) else None
            if start is not None and start.is_absolute() and start.is_relative_to(Path.cwd()):
                entry["init_from"] = str(start.relative_to(Path.cwd()))
    # A first stage is hashed by what it was (its own config hash), not by where it lies.
    start = pipeline.identity(cfg)
    if start is not None:
        data["init_from"] = start
    resolved = resolved_device(cfg)
    if resolved is not None:
        data["resolved"] = resolved
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolved_device(cfg: DictConfig) -> dict | None:
    """What `device: auto` and `precision: auto` became on this machine, for the hash: a GPU run must never
    resume, or be reused as, a CPU run of the same settings. None for CPU in fp32, where every run before
    this key was recorded ran, so that those runs keep their hash."""
    try:
        described = devices.describe(str(cfg.device))
        chosen = devices.precision(described, str(cfg.precision))
    except BenchError:  # refused at validation, which records the run as failed with the reason
        return {"device": str(cfg.device), "precision": str(cfg.precision)}
    if described.kind == "cpu" and chosen == "fp32":
        return None
    return {"device": described.kind, "precision": chosen, "gpu": described.name if described.kind == "cuda" else None}


def trainer_kwargs(cfg: DictConfig, runtime: Runtime, method=None) -> dict:
    """train.args, the shared sampling settings, the method's args, then what the harness owns
    (precision, seed, outputs, the dropout policy).

    `method` (a methods.Method) says which of its config's fields take the shared `sampling:` values
    and whether its config has a `disable_dropout` switch; without it only the generic fields are set.
    """
    import dataclasses

    method_args = OmegaConf.to_container(cfg.method.get("args") or {}, resolve=True)
    sampling = OmegaConf.to_container(cfg.get("sampling") or {}, resolve=True)
    shared = {  # the method's own YAML wins: a declared difference the fairness audit shows
        field: sampling[key]
        for key, field in (method.sampling if method else {}).items()
        if key in sampling and field not in method_args
    }
    kwargs = {**OmegaConf.to_container(cfg.train.args, resolve=True), **shared, **method_args}
    fields = {f.name for f in dataclasses.fields(method.config_class)} if method else set()
    owned = {
        "output_dir": str(Path(cfg.output_dir) / "trainer"),
        "seed": int(cfg.seed),
        "report_to": [],  # the harness logs to W&B itself, the same way for every method (bench.records.tracking)
        **runtime.trainer_flags,
    }
    if "disable_dropout" in fields:  # one dropout policy for every method (train.disable_dropout)
        owned["disable_dropout"] = bool(cfg.train.get("disable_dropout", True))
    if kwargs.get("disable_tqdm") is None:  # bars in a terminal; readable log lines in CI and files
        kwargs["disable_tqdm"] = not sys.stderr.isatty()
    clash = sorted(k for k in owned if k in kwargs)
    if clash:
        raise BenchError(
            f"train.args/method.args set {clash}, which the harness owns so that every method runs alike: "
            "use the top-level seed=, precision= (auto|bf16|fp16|fp32), device=, logger= and "
            "train.disable_dropout= (one dropout policy for every method) instead."
        )
    kwargs.update(owned)
    return kwargs


def build_trainer_config(config_class: type, kwargs: dict, method: str):
    """Pass the args straight into the TRL dataclass; turn its complaints into one clear paragraph."""
    try:
        return config_class(**kwargs)
    except TypeError as err:
        import dataclasses

        known = {f.name for f in dataclasses.fields(config_class)}
        unknown = sorted(set(kwargs) - known)
        import difflib

        hints = [
            f"{k} (did you mean {difflib.get_close_matches(k, known, n=1)[0]}?)"
            if difflib.get_close_matches(k, known, n=1)
            else k
            for k in unknown
        ]
        raise BenchError(
            f"method={method}: {config_class.__name__} has no field(s) {', '.join(hints) or err}. "
            f"Method settings go under method.args and must be fields of {config_class.__module__}."
            f"{config_class.__name__}; shared ones under train.args."
        ) from err
    except ValueError as err:
        raise BenchError(f"method={method}: {config_class.__name__} rejected the settings: {err}") from err


def memory_floor(cfg: DictConfig, runtime: Runtime, audit, data_kind: str, batch: int, prompt_tokens: int,
                 available: int | None = None) -> dict:
    """A floor under a training step's memory from the shapes alone, to warn before the out-of-memory
    killer does: the weights as stored (4 or 8 bits quantized; full fine-tuning keeps fp32 weights, their
    gradients and two Adam moments: 16 bytes a weight), and the input of every layer, which backward needs,
    for each row of the batch that holds the longest prompt (rows are padded to it; chosen and rejected both
    for preference data), with a full completion. Every trainer holds at least this; the real peak is
    higher (bench.estimate will predict it). Hand-written: no library bounds a TRL step's memory."""
    import torch

    size = runtime.dtype.itemsize
    bits = {"nf4": 4, "int8": 8}.get(cfg.quant.name)
    weights = audit.base_params * (16 if audit.mode == "none" else bits / 8 if bits else size)
    rows = batch * (2 if data_kind == "preference" else 1)
    tokens = prompt_tokens + int(cfg.train.max_completion_length)
    activations = rows * tokens * audit.hidden_size * audit.num_layers * size
    if available is None:
        if runtime.device == "cuda":
            available = torch.cuda.get_device_properties(runtime.index or 0).total_memory
        else:
            import psutil

            available = psutil.virtual_memory().available
    return {"weights": int(weights), "activations": activations, "total": int(weights) + activations,
            "rows": rows, "tokens": tokens, "available": int(available)}


def warn_if_it_cannot_fit(cfg: DictConfig, runtime: Runtime, validated, prompt_tokens: int) -> dict:
    """Warn, with the figures, when memory_floor already exceeds the memory available."""
    floor = memory_floor(cfg, runtime, validated.audit, validated.method.data,
                         int(validated.trainer_config.per_device_train_batch_size), prompt_tokens)
    if floor["total"] > floor["available"]:
        audit = validated.audit
        log.warning(
            "method=%s will not fit: a training step needs at least %.1f GB (weights %.1f GB; the layer inputs "
            "one step saves for backward, %d rows x %d tokens x %d wide x %d layers, %.1f GB), and %.1f GB is "
            "available. Lower train.max_prompt_length, train.max_completion_length or the batch size.",
            cfg.method.name, floor["total"] / 1e9, floor["weights"] / 1e9, floor["rows"], floor["tokens"],
            audit.hidden_size, audit.num_layers, floor["activations"] / 1e9, floor["available"] / 1e9,
        )
    return floor


def unmeasured(kwargs: dict, method: str) -> None:
    """Refuse TRL settings that move a run's work where the harness cannot measure it (into another
    process, whose memory and time no record of this run would hold), or that undo its dtype rule."""
    if kwargs.get("use_vllm") and kwargs.get("vllm_mode", "colocate") == "server":
        raise BenchError(
            f"method={method}: use_vllm with vllm_mode=server generates in a separate `trl vllm-serve` process, "
            "whose memory and time this run cannot measure, unlike the other methods'. Use "
            "method.args.vllm_mode=colocate (vLLM inside the run), or leave use_vllm off."
        )
    if kwargs.get("use_transformers_paged"):
        raise BenchError(
            f"method={method}: use_transformers_paged casts the whole model to bf16 at every generation, the "
            "fp32 adapter (and a full fine-tune's master weights) included, mid-run. Leave it off."
        )
    if int(kwargs.get("dataloader_num_workers") or 0) > 0:
        raise BenchError(
            f"method={method}: dataloader_num_workers={kwargs['dataloader_num_workers']} loads data in worker "
            "processes, whose memory and time this run does not measure. Leave it at 0 (the batches here are "
            "token ids already in memory)."
        )


@dataclass
class Validated:
    """What validation learned without loading weights; the recipe reuses it."""

    method: object  # methods.Method
    trainer_config: object  # the method's TRL config
    audit: object  # bench.measure.params.Audit: what peft builds on this architecture


def validate(cfg: DictConfig, runtime: Runtime) -> Validated:
    """Every check that needs no weights, in seconds: the method and its TRL config (TRL's own checks),
    the task, the fine-tuning mode (peft's own wrap on the meta device), quantization and paths."""
    import methods
    from bench.measure.params import audit_config
    from bench.recipe import finetuning
    from bench.tasks import TASKS

    try:
        method = methods.get(methods.adapter_name(cfg.method))
    except KeyError as err:
        fix = (
            f"conf/method/{cfg.method.name}.yaml names `adapter: {cfg.method.adapter}`: name a registered one"
            if cfg.method.get("adapter")
            else f"conf/method/{cfg.method.name}.yaml exists, so add its adapter file in methods/, or make it a "
            "variant of a registered one with `adapter:`"
        )
        raise BenchError(f"{err.args[0]} {fix} (see README, 'Adding a method').") from err
    why = method.unavailable()
    if why is not None:
        raise BenchError(why)
    if cfg.task.name not in TASKS.names():
        raise BenchError(
            f"{TASKS.unknown(cfg.task.name)} conf/task/ names it, so add its file in bench/tasks/ "
            "(see README, 'Adding a task')."
        )
    if runtime.device == "cuda":
        devices.one_gpu_per_run(runtime.gpus_visible, runtime.index, launched=distributed.world_size() > 1)
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
                f"task.data_dir={str(data_dir)!r} lacks {', '.join(missing)}; it must hold "
                "train.jsonl and test.jsonl."
            )
    from bench.tasks.base import SPLITS

    if cfg.eval.get("split", "test") not in SPLITS:
        raise BenchError(
            f"eval.split={cfg.eval.split!r}: score on one of {', '.join(SPLITS)} (validation for choices such "
            "as a tuned learning rate, test for what is reported)."
        )
    noise = cfg.data.get("label_noise", 0.0)
    if not isinstance(noise, (int, float)) or not 0.0 <= float(noise) <= 0.5:
        raise BenchError(
            f"data.label_noise={noise!r}: a rate in [0, 0.5] at which each preference pair (and its two KTO "
            "labels) is flipped; 0.5 makes the labels coin flips, above that they would mean the opposite."
        )
    if cfg.eval.get("path", "adapter") not in ("merged", "adapter"):
        raise BenchError(
            f"eval.path={cfg.eval.path!r}: merged (score the adapter merged into its base, the default) or "
            "adapter (score it unmerged, as trained)."
        )
    if cfg.method.get("reward") == "model" and cfg.quant.name != "none":
        # Measured on CPU (tiny model, fp32): TRL's RewardTrainer casts the QLoRA score head to bf16 and its
        # first step fails on a dtype mismatch; and merging the trained reward adapter into 4- or 8-bit
        # weights would round it away, as eval.path's merge refuses to.
        raise BenchError(
            f"method.reward=model with quant={cfg.quant.name}: PPO's trained reward model does not work on a "
            "quantized base yet. Use method.reward=rule (the task's reward, the default) or quant=none."
        )
    rollout = cfg.train.get("rollout", "trl")
    if rollout not in ("trl", "merged"):
        raise BenchError(f"train.rollout={rollout!r}: trl (TRL's own rollout, the default) or merged.")
    if rollout == "merged":
        why = ("it does not generate while training" if not method.sampling
               else "full fine-tuning has no adapter to merge" if finetuning.is_full(cfg.peft)
               else f"merging into {cfg.quant.name} weights rounds them, so its rollouts would not be the "
                    "adapter's" if cfg.quant.name != "none"
               # Merge then unmerge in bf16/fp16 rounds the frozen base twice per rollout, and the error
               # accumulates over a run: the base would drift. fp32 rounds ~1e-7 (train/frozen_max_rel_change).
               else f"merging and unmerging in {runtime.precision} rounds the frozen weights at every rollout, "
                    "so they drift over the run (precision=fp32 keeps them)" if runtime.precision != "fp32"
               else None)
        if why:
            raise BenchError(f"train.rollout=merged with method={cfg.method.name}: {why}. Use train.rollout=trl.")
    from bench.recipe import pipeline

    pipeline.load(cfg)  # init_from: a finished run on this base, with its weights (reads files only)
    if cfg.quant.name not in ("none", "nf4", "int8"):
        raise BenchError(f"quant={cfg.quant.name!r} is not one of none, nf4, int8.")
    if cfg.quant.name != "none" and finetuning.is_full(cfg.peft):
        raise BenchError(
            f"quant={cfg.quant.name} with peft=none asks to fully fine-tune a quantized base, whose "
            "weights cannot be trained. Use quant=none for full fine-tuning, or an adapter (peft=lora) "
            "on the quantized base (QLoRA)."
        )
    audit = audit_config(cfg)  # peft's own wrap on the meta device: a bad target fails here, in seconds
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
    return Validated(method, args, audit)
