"""Multi-stage training: `init_from=<run>` starts a run from an earlier run's trained weights.

SFT then DPO, SFT then GRPO ("cold start"), or any chain: the second stage's run names the first
stage's finished run folder, or a glob that matches exactly one (`results/sweep/*_sft_seed0`, so that
one sweep can hold both stages and each seed starts from its own first stage).

What the second stage starts from is the first stage's model as a plain base:
- a LoRA (or other adapter) first stage is merged into its own base once, cached by the adapter's
  hashes (`<cache_dir>/models/merged-<key>`): the second stage then trains a fresh adapter (or every
  weight) on top, and its reference model (the adapter disabled) is the first stage's model, as SFT
  then DPO means. Continuing the first adapter instead would leave DPO's reference at the original base.
- a full fine-tune's saved `model/` folder is that base as it is.
The first stage's base is loaded unquantized for the merge (a QLoRA stage's adapter merged into
4-bit weights would round them); the second stage quantizes the merged weights as its own quant= says.

A pipeline is one row of the report: its record's `method` is the chain (`sft→dpo`), and
`pipeline/full_s` and `pipeline/peak_mem_bytes` charge it every stage's time and its largest peak.
Its eval/base_* scores are the original base's, so its delta is the whole pipeline's, like every
other row's. Everything here that reads the first stage is cheap and runs at validation.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from bench import BenchError
from bench.config import history
from bench.records import store
from bench.system import cache, files

log = logging.getLogger(__name__)


ARROW = "→"  # how a chain is written in the record's `method` (sft→dpo)


@dataclass(frozen=True)
class Stage:
    """A finished earlier run that this run starts from."""

    folder: Path  # its run folder
    record: dict  # its metrics.json
    cfg: DictConfig  # its config_resolved.yaml
    weights: Path | None  # its adapter/ or model/; None where they are gone (it resumes, it cannot be trained on)

    @property
    def is_adapter(self) -> bool:
        return self.weights is not None and (self.weights / "adapter_config.json").is_file()

    def usable_weights(self) -> Path:
        """Its weights, checked (sizes and small files' hashes): what a run that trains on it needs."""
        if self.weights is None:
            raise BenchError(
                f"init_from: {self.folder} has no adapter/ or model/: it is not a run folder that the "
                "harness saved (or its weights were cleaned). Rerun that run with force=true."
            )
        cache.require(self.weights, "saved weights of the first stage", f"Rerun {self.folder}'s run with force=true.")
        return self.weights

    @property
    def methods(self) -> list[str]:
        """The chain up to and including this stage (its own record has the earlier ones)."""
        return list(self.record.get("pipeline/stages") or [self.record.get("method")])


def spec(cfg: DictConfig) -> str | None:
    value = cfg.get("init_from")
    return None if value in (None, "") else str(value)


def find(pattern: str) -> Path:
    """The one run folder `pattern` names (a path or a glob); a clear error for none or several."""
    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)) if Path(p, "metrics.json").is_file())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BenchError(
            f"init_from={pattern!r} names no run folder (one with a metrics.json). Give the folder of the "
            "finished run to start from, or a glob that matches exactly one (results/sweeps/x/*_sft_seed0); "
            "in a sweep that holds both stages, the first stage must come first in the sweep's order."
        )
    raise BenchError(
        f"init_from={pattern!r} matches {len(matches)} run folders ({', '.join(str(m) for m in matches[:4])}"
        f"{', ...' if len(matches) > 4 else ''}); it must name one. Narrow the glob (add the method and the seed)."
    )


def load(cfg: DictConfig) -> Stage | None:
    """This run's first stage, checked: finished, with its weights and config, on this run's base model."""
    pattern = spec(cfg)
    if pattern is None:
        return None
    folder = find(pattern)

    record = store.read(folder / "metrics.json")
    if record.get("status") != "success":
        raise BenchError(
            f"init_from: {folder} did not finish (status {record.get('status')!r}"
            f"{': ' + str(record['error']).splitlines()[0] if record.get('error') else ''}); "
            "rerun that run first, then this one."
        )
    weights = next((folder / n for n in ("adapter", "model") if (folder / n).is_dir()), None)
    config = folder / "config_resolved.yaml"
    if not config.is_file():
        raise BenchError(f"init_from: {folder} has no {config.name}: it is not a run folder that the harness saved.")
    earlier = history.complete(files.read_yaml(config, "Rerun that run with force=true to rewrite it."))
    mine, theirs = cfg.model, earlier.model
    differs = [k for k in ("name_or_path", "revision", "weights") if str(mine.get(k)) != str(theirs.get(k))]
    if differs:
        named = ", ".join(f"{k}={theirs.get(k)}" for k in differs)
        raise BenchError(
            f"init_from: {folder} trained model {theirs.get('name_or_path')} ({named}), "
            f"this run's model.{differs[0]} is {mine.get(differs[0])}: a second stage must start from a first "
            "stage on the same base. Set the same model= (or start from a run on this one)."
        )
    return Stage(folder, record, earlier, weights)


def identity(cfg: DictConfig) -> str | None:
    """What the config hash takes for init_from: the first stage's own config hash where it is found
    (a rerun first stage makes this run's hash change, so resume redoes it), else the pattern."""
    pattern = spec(cfg)
    if pattern is None:
        return None
    try:
        return "run:" + str(store.read(find(pattern) / "metrics.json").get("config_hash"))
    except BenchError:
        return pattern


def identity_of(cfg: DictConfig, stage: Stage | None) -> str | None:
    """`identity` for a first stage already loaded (a plan's): the one a run hashes with."""
    if stage is None:
        return spec(cfg)
    return "run:" + str(stage.record.get("config_hash"))


def header_of(cfg: DictConfig, stage: Stage | None) -> dict:
    """The record's pipeline fields known at the start (the method is the chain)."""
    if stage is None:
        return {}
    chain = [*stage.methods, str(cfg.method.name)]
    return {"method": ARROW.join(chain), "pipeline/stages": chain, "pipeline/from": str(stage.folder)}


def charge(stage: Stage | None, record: dict) -> dict:
    """The whole pipeline's cost for a finished second stage: every stage's full time, the largest peak,
    and the first stage's own accuracy beside this one's."""
    if stage is None:
        return {}
    before = stage.record
    merge = (record.get("pipeline/merge_s") or 0) * bool(record.get("pipeline/merge_cached"))
    earlier_s = before.get("pipeline/full_s", before.get("time/full_s", before.get("time/total_s"))) or 0
    peaks = [before.get("pipeline/peak_mem_bytes", before.get("sys/peak_mem_bytes")), record.get("sys/peak_mem_bytes")]
    out = {
        "pipeline/full_s": round(float(earlier_s) + float(record.get("time/full_s") or 0) + merge, 3),
        "pipeline/peak_mem_bytes": max(int(p) for p in peaks if p is not None)
        if any(p is not None for p in peaks)
        else None,
        "pipeline/from_config_hash": before.get("config_hash"),
    }
    if isinstance(before.get("eval/accuracy"), (int, float)):
        out["pipeline/from_accuracy"] = before["eval/accuracy"]
    return out
