"""A run's identity: the hash of what it computes, which resume and reuse compare."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import history, stages
from bench.config.compose import MODE_ENTRIES
from bench.system import devices

# Keys that say where or how a run is recorded, not what it computes: left out of config_hash.
_NON_SEMANTIC = ("output_dir", "cache_dir", "logger", "isolate", "force", "overrides", "reuse", "verbose")


# Keys added after runs were recorded: left out of the hash at the value every run had before them.
_OFF = history.HASH_NEUTRAL


def config_hash(cfg: DictConfig, start: str | None, device: dict | None) -> str:
    """The hash of what `cfg` computes. `start`: what the run starts from (bench.config.stages.identity_of:
    a first stage's own hash, not where it lies); `device`: what device and precision became
    (`runtime_identity`). A run's plan hashes once, with both as it resolved them; `recorded_hash` reads
    them from a recorded config."""
    data = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True))  # a DictConfig's is a dict
    for key in _NON_SEMANTIC:
        data.pop(key, None)
    for dotted, off in _OFF.items():
        *parents, key = dotted.split(".")
        node: Any = data
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
            first = (
                Path(entry["init_from"])
                if isinstance(entry, dict) and isinstance(entry.get("init_from"), str)
                else None
            )
            if first is not None and first.is_absolute() and first.is_relative_to(Path.cwd()):
                entry["init_from"] = str(first.relative_to(Path.cwd()))
    if start is not None:
        data["init_from"] = start
    if device is not None:
        data["resolved"] = device
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def recorded_hash(cfg: DictConfig) -> str:
    """The hash of a recorded (or composed) config, with no plan: its first stage found from init_from
    and its device described here (a committed run's hash is checked this way)."""
    return config_hash(cfg, stages.identity(cfg), resolved_device(cfg))


def resolved_device(cfg: DictConfig) -> dict | None:
    """What `device: auto` and `precision: auto` became on this machine, for the hash: a GPU run must never
    resume, or be reused as, a CPU run of the same settings. None for CPU in fp32, where every run before
    this key was recorded ran, so that those runs keep their hash."""
    try:
        described = devices.describe(str(cfg.device))
        chosen = devices.precision(described, str(cfg.precision))
    except BenchError:  # refused at validation, which records the run as failed with the reason
        return {"device": str(cfg.device), "precision": str(cfg.precision)}
    return runtime_identity(described.kind, chosen, described.name)


def runtime_identity(kind: str, precision: str, gpu: str | None) -> dict | None:
    if kind == "cpu" and precision == "fp32":
        return None
    return {"device": kind, "precision": precision, "gpu": gpu if kind == "cuda" else None}
