"""A run's record: its fields for each way a run ends, its costs, and the one writer of metrics.json."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig

from bench import BenchError
from bench.recipe.plan import Plan
from bench.records import store, tracking
from bench.system import console, distributed, signals

log = logging.getLogger(__name__)
METRICS = "metrics.json"


def write(out: Path, record: dict) -> None:
    """Write the run's metrics.json, atomically: the only place it is written. Under a data-parallel
    launcher a job has one record, rank 0's."""
    if distributed.is_main():
        store.write(out / METRICS, record)


def read(out: Path) -> dict:
    return store.read(out / METRICS)


def interrupted(stop: signals.Interrupted | None, phase: str, error: str | None = None) -> dict:
    """The record's fields for a run that a stop signal ended (None: an exit that no signal of ours
    raised, with `error` saying what it was)."""
    return {
        "status": "interrupted",
        "error": error
        or f"interrupted by {stop.name if stop else 'exit'} during {phase}; rerun the same command to resume",
        "interrupted/signal": stop.name if stop else "exit",
        "interrupted/phase": phase,
    }


def status(err: BaseException) -> str:
    import torch

    from bench.measure.metrics import Diverged

    if isinstance(err, Diverged):
        return "diverged"
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return "oom"
    return "failed"


def failure(err: Exception) -> dict:
    """A failed run's status and error: the message alone for a BenchError, else a traceback's tail."""
    out = {"status": status(err), "error": str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"}
    if hasattr(err, "step"):
        out["train/diverged_step"] = err.step
    if not isinstance(err, BenchError):
        out["traceback"] = "".join(traceback.format_exc().splitlines(keepends=True)[-30:])
    return out


def stopped(err: BaseException) -> dict:
    """An interrupted run's fields (a stop signal, or a scheduler's SystemExit); anything else re-raised."""
    stop = signals.as_interrupted(err)
    if stop is not None:
        return interrupted(stop, signals.phase())
    if isinstance(err, SystemExit):  # from a signal handler of the job's scheduler (submitit's
        # requeue on preemption or near its time limit calls sys.exit inside the run)
        return interrupted(
            None,
            signals.phase(),
            (
                f"the job exited during {signals.phase()} (SystemExit {err.code}; under submitit, its requeue on "
                "preemption or time limit); the requeued job or a rerun resumes"
            ),
        )
    raise err


def unplanned(cfg: DictConfig, out: Path, err: Exception, started: float) -> dict:
    """The record of a run whose plan could not be made (validation refused it): failed, with no hash.
    A finished run already in the folder is left as it is (a lock without its method, say, cannot plan
    it again, and its record is still true)."""
    from bench.recipe.plan import header

    record = header(cfg, None, None) | failure(err) | {"time/total_s": round(time.perf_counter() - started, 3)}
    earlier = out / METRICS
    try:
        finished = earlier.is_file() and store.read(earlier).get("status") == "success"
    except BenchError:
        finished = False
    if not finished and distributed.is_main():
        store.write_config(out / "config_resolved.yaml", cfg)
        write(out, record)
    log.error("run %s: %s · %s", record["status"], record["error"], console.failure_details(out, record))
    return record


def own_time(started: float, record: dict) -> float:
    """The run's own time: a wait for its GPU (bench.system.devices.turn) is another run's."""
    return round(time.perf_counter() - started - record.get("time/gpu_wait_s", 0.0), 3)


def costs(started: float, record: dict) -> dict:
    """time/total_s, and time/full_s: the run's own time plus the original cost of shared work it found
    cached, so that a table charges every method the same whichever ran first."""
    total = own_time(started, record)
    full = (
        total
        + (record.get("data/build_s") or 0) * bool(record.get("data/build_cached"))
        + (record.get("eval/base_s") or 0) * bool(record.get("eval/base_cached"))
    )
    return {"time/total_s": total, "time/full_s": round(full, 3)}


def publish(plan: Plan, record: dict) -> None:
    """The model card, metrics.json, then W&B (whose folder the record names once it is written)."""
    out = plan.output_dir
    _card(plan, record)
    write(out, record)
    try:
        wandb_dir = tracking.log_run(plan.config, out, record)
    except Exception as err:  # a tracker problem must not turn a finished run into a failed one
        log.warning("W&B logging failed: %s", err)
    else:
        if wandb_dir:
            record["wandb/dir"] = wandb_dir
            write(out, record)


def _card(plan: Plan, record: dict) -> None:
    """The saved weights' model card, once the run's metrics are known."""
    folder = plan.output_dir / str(record.get("train/weights_dir", ""))
    if record.get("status") != "success" or not record.get("train/weights_dir") or not folder.is_dir():
        return
    try:
        from bench.recipe import cards

        cards.write_card(folder, plan, record)
    except Exception as err:  # a card problem must not turn a finished run into a failed one
        log.warning("model card for %s not written: %s", folder, err)
