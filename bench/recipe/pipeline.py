"""A run's starting weights: the base model, or for a second stage the first stage's adapter merged into
its own base, once, cached (what init_from means is in bench.config.stages).

`start_model` names the folder a run loads, and every merge that makes it, before any work (a plan holds
it); `ensure` builds what is not cached yet, in setup.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from bench import BenchError
from bench.config.stages import Stage, load
from bench.recipe.models import model_folder, resolve_model_path
from bench.system import cache, files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Merge:
    """A first stage's adapter merged into the model it was trained on: built once, cached by the adapter's
    hashes (`<cache_dir>/models/merged-<key>`)."""

    stage: Path  # the first stage's run folder
    adapter: Path  # its adapter/
    base: str  # the model folder the adapter sits on
    revision: str | None
    target: Path


@dataclass(frozen=True)
class StartModel:
    """The model folder a run loads, and how it comes to be."""

    name_or_path: str  # model.name_or_path
    cache_dir: str  # where an embedded model's copy and the merges are cached (this run's)
    origin: str  # the base model's folder (an embedded model's converted copy)
    path: str  # what the run loads: the origin, a full fine-tune's model/, or the last merge's target
    merges: tuple[Merge, ...] = ()  # a chain's merges, the first stage's first
    # Why it cannot be built (a first stage whose weights are gone), said when a run needs it: a finished
    # run on such a stage is still planned, so that it resumes.
    problem: str | None = None


def start_model(stage: Stage | None, name_or_path: str, cache_dir: str) -> StartModel:
    """The start of a run with first stage `stage` (None: the base itself). Reads files only; merges go to
    `cache_dir` (this run's: an earlier stage's config may name another machine's)."""
    origin = model_folder(name_or_path, cache_dir)
    try:
        path, merges = _start(stage, origin, cache_dir)
    except BenchError as err:
        return StartModel(name_or_path, cache_dir, origin, "", problem=str(err))
    return StartModel(name_or_path, cache_dir, origin, path, tuple(merges))


def _start(stage: Stage | None, origin: str, cache_dir: str) -> tuple[str, list[Merge]]:
    if stage is None:
        return origin, []
    weights = stage.usable_weights()
    if not stage.is_adapter:  # a full fine-tune saved every weight: that folder is the base
        return str(weights), []
    earlier, merges = _start(load(stage.cfg), origin, cache_dir)  # a chain: its own start, merged first
    digest = hashlib.sha256(earlier.encode())
    for name in sorted(
        p.name for p in weights.iterdir() if p.suffix in (".safetensors", ".json") and not p.name.startswith(".")
    ):
        digest.update(name.encode() + (weights / name).read_bytes())  # an adapter: megabytes at most
    target = Path(cache_dir).expanduser() / "models" / f"merged-{digest.hexdigest()[:12]}"
    merge = Merge(stage.folder, weights, earlier, stage.cfg.model.get("revision"), target)
    return str(target), [*merges, merge]


def ensure(start: StartModel) -> dict:
    """Build what the start model needs and is not cached yet (the base's copy, then each merge); returns
    what this run's own merge cost: `pipeline/merge_s`, `pipeline/merge_cached`."""
    if start.problem is not None:
        raise BenchError(start.problem)
    resolve_model_path(start.name_or_path, start.cache_dir)
    cost: dict = {}
    for merge in start.merges:
        cost = _ensure_merged(merge)
    return cost


def _ensure_merged(merge: Merge) -> dict:
    target = merge.target
    with cache.build_lock(target):  # parallel second stages: one merges, the others wait for it
        if cache.usable(target, "merged first-stage model"):
            return {"pipeline/merge_s": _built_s(target), "pipeline/merge_cached": True}
        started = time.perf_counter()
        _merge(merge)
        took = round(time.perf_counter() - started, 3)
        cache.write_json(
            target / "merge.json",
            {"from": str(merge.stage), "adapter": str(merge.adapter), "base": merge.base, "build_s": took},
            indent=1,
        )
        cache.seal(target)
    return {"pipeline/merge_s": took, "pipeline/merge_cached": False}


def _built_s(target: Path) -> float | None:
    try:
        return files.read_json(target / "merge.json").get("build_s")
    except BenchError:
        return None


def _merge(merge: Merge) -> None:
    """peft's merge_and_unload on an unquantized fp32 copy of the base (exact, device-independent)."""
    from peft import PeftModel

    from bench.recipe.models import load_model, load_tokenizer
    from bench.system.runtime import resolve_runtime

    log.info("init_from: merging %s into its base %s (once, cached in %s)", merge.adapter, merge.base, merge.target)
    cpu = resolve_runtime("cpu", "fp32")
    model = load_model(merge.base, cpu, OmegaConf.create({"name": "none"}), revision=merge.revision)
    model = PeftModel.from_pretrained(model, str(merge.adapter)).merge_and_unload()
    tmp = merge.target.with_name(f"{merge.target.name}.tmp{os.getpid()}")
    model.save_pretrained(tmp)
    load_tokenizer(str(merge.adapter)).save_pretrained(tmp)  # the first stage's tokenizer, saved beside its adapter
    cache.replace_dir(tmp, merge.target)
