"""A second stage's starting weights: the first stage's adapter merged into its own base, once, cached
(what init_from means is in bench.config.stages)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from bench import BenchError
from bench.config.stages import Stage, load
from bench.system import cache, files

log = logging.getLogger(__name__)


def start_path(stage: Stage | None, origin: str, cache_dir: str) -> tuple[str, dict]:
    """The model folder a run with first stage `stage` starts from (`origin`, the resolved base, when it
    has none), and what getting it cost: `pipeline/merge_s`, `pipeline/merge_cached`. Merges go to
    `cache_dir` (this run's; an earlier stage's config may name another machine's)."""
    if stage is None:
        return origin, {}
    if not stage.is_adapter:  # a full fine-tune saved every weight: that folder is the base
        return str(stage.weights), {}
    return merged(stage, origin, cache_dir)


def merged(stage: Stage, origin: str, cache_dir: str) -> tuple[str, dict]:
    """The first stage's adapter merged into its own base, built once and cached by the adapter's hashes."""
    earlier_base, _ = start_path(load(stage.cfg), origin, cache_dir)  # a chain: its own start, merged first
    digest = hashlib.sha256(earlier_base.encode())
    for name in sorted(p.name for p in stage.weights.iterdir()
                       if p.suffix in (".safetensors", ".json") and not p.name.startswith(".")):
        digest.update(name.encode() + (stage.weights / name).read_bytes())  # an adapter: megabytes at most
    key = digest.hexdigest()[:12]
    target = Path(cache_dir).expanduser() / "models" / f"merged-{key}"
    with cache.build_lock(target):  # parallel second stages: one merges, the others wait for it
        if cache.usable(target, "merged first-stage model"):
            return str(target), {"pipeline/merge_s": _built_s(target), "pipeline/merge_cached": True}
        started = time.perf_counter()
        _merge(stage, earlier_base, target)
        took = round(time.perf_counter() - started, 3)
        cache.write_json(target / "merge.json", {"from": str(stage.folder), "adapter": str(stage.weights),
                                                 "base": earlier_base, "build_s": took}, indent=1)
        cache.seal(target)
    return str(target), {"pipeline/merge_s": took, "pipeline/merge_cached": False}


def _built_s(target: Path) -> float | None:
    try:
        return files.read_json(target / "merge.json").get("build_s")
    except BenchError:
        return None


def _merge(stage: Stage, base_path: str, target: Path) -> None:
    """peft's merge_and_unload on an unquantized fp32 copy of the base (exact, device-independent)."""
    from peft import PeftModel

    from bench.recipe.models import load_model, load_tokenizer
    from bench.system.runtime import resolve_runtime

    log.info("init_from: merging %s into its base %s (once, cached in %s)", stage.weights, base_path, target)
    cpu = resolve_runtime("cpu", "fp32")
    model = load_model(base_path, cpu, OmegaConf.create({"name": "none"}), revision=stage.cfg.model.get("revision"))
    model = PeftModel.from_pretrained(model, str(stage.weights)).merge_and_unload()
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    model.save_pretrained(tmp)
    load_tokenizer(str(stage.weights)).save_pretrained(tmp)  # the first stage's tokenizer, saved beside its adapter
    cache.replace_dir(tmp, target)
