"""Resume and reuse: a run whose config hash matches a finished record is that record, not a new run."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from bench import BenchError
from bench.recipe.plan import Plan
from bench.run import record
from bench.run.record import METRICS
from bench.system import console, distributed

log = logging.getLogger(__name__)


def earlier_result(plan: Plan) -> dict | None:
    """This run's own finished record (resume), or a finished twin's copied from `reuse`; else None."""
    if plan.config.force:
        return None
    out = plan.output_dir
    done = finished(out, plan.config_hash)
    if done is not None:
        log.info(
            "skipping %s: finished earlier with the same config (force=true reruns it)", out, extra=console.CONSOLE
        )
        return done
    source = reusable(plan.config.reuse, plan.config_hash)
    if source is not None and distributed.is_main():
        return adopt(source, out)
    return None


def finished(out: Path, config_hash: str) -> dict | None:
    """The earlier record of this run folder if it finished with this very config, else None."""
    if not (out / METRICS).exists():
        return None
    try:
        earlier = record.read(out)
    except BenchError:  # unreadable or undecodable: never trusted, rerun
        return None
    ok = earlier.get("status") == "success" and earlier.get("config_hash") == config_hash
    return earlier if ok else None


def reusable(folders, config_hash: str) -> Path | None:
    """A finished run with this very config below any of `folders` (reuse=[...]), or None."""
    for folder in map(Path, folders):
        for path in sorted(folder.expanduser().rglob(METRICS)) if folder.expanduser().is_dir() else []:
            if finished(path.parent, config_hash) is not None:
                return path.parent
    return None


def adopt(source: Path, out: Path) -> dict:
    """Copy a finished identical run into this run's folder instead of training it again; its record
    keeps what it measured and when (its commit), and says where it came from (`reused_from`)."""
    for item in source.iterdir():
        if item.name in (METRICS, "wandb") or item.name.startswith("."):
            continue
        target = out / item.name
        shutil.copytree(item, target, dirs_exist_ok=True) if item.is_dir() else shutil.copy2(item, target)
    adopted = record.read(source)
    weights = adopted.get("train/weights_dir")
    adopted |= {
        "reused_from": str(source),
        "output_dir": str(out),
        "reused/weights": bool(weights) and (out / str(weights)).is_dir(),
    }
    record.write(out, adopted)  # last: a copy cut short is no finished run
    log.info("reusing %s: %s finished with the same config (its record, not a new measurement)", out, source)
    return adopted


def clean_partial(out: Path) -> None:
    """Remove what a killed attempt left half-written (temporary files and folders)."""
    for path in out.glob("*.tmp*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in out.glob(".*.tmp*"):
        path.unlink()
