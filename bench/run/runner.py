"""One benchmark run, top to bottom: resume check, validate, train (setup, build, train, save),
evaluate, record. Every phase is timed; `metrics.json` is always written, atomically.

`run(cfg)` is the whole recipe and is what tests call; `bench.__main__` only wraps it for Hydra.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import finetuning, history, stages
from bench.config.compose import apply_tuned
from bench.config.hashing import config_hash
from bench.config.plan import Plan, resolve
from bench.recipe import evaluate
from bench.recipe.models import cache_root
from bench.records import store, tracking
from bench.system import console, devices, distributed, secrets, signals
from methods import adapter_name

log = logging.getLogger(__name__)
METRICS = "metrics.json"


def run(cfg: DictConfig) -> dict:
    """Run one configuration; always writes `metrics.json` in `cfg.output_dir` and returns it.

    A finished run (`status: success` with the same config hash) is skipped unless `force=true`.
    With `isolate: true` the work happens in a fresh process, so peak memory is this run's alone
    (a sweep runs jobs one after another in one process) and a hard crash fails only this run.
    """
    apply_tuned(cfg)  # a tuned table's settings for this method, before the config is hashed or checked
    history.complete(cfg)  # keys whose default is not in YAML (data.label_noise: see its comment)
    OmegaConf.resolve(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with claim(out) as mine:
        if not mine:  # a second, identical sweep into this folder: leave this run to the process doing it
            log.warning("skipping %s: another process is running it now (its record is %s)", out, out / METRICS)
            return {"status": "running", "error": f"{out} is being run by another process"}
        return _run(cfg, out)


@contextmanager
def claim(out: Path):
    """Hold an exclusive lock on the run folder itself while this process runs it: yields False when
    another process holds it (two identical sweeps into one folder then share the runs out instead of
    writing the same files at once). flock on the folder's own descriptor, released by the OS when the
    process dies, and no lock file to leave behind (filelock locks files only, hence this). Under a
    data-parallel launcher only the main process claims; where flock is unsupported, nothing is locked.
    """
    import fcntl
    import os

    if not distributed.is_main():
        yield True
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # a file system without flock on folders: run unguarded, as before
            pass
        yield True
    finally:
        os.close(fd)  # releases the lock


def _run(cfg: DictConfig, out: Path) -> dict:
    hashed = config_hash(cfg)
    earlier = _earlier_result(cfg, out, hashed)
    if earlier is not None:
        return earlier
    if distributed.is_main():  # data parallel: one record per job, rank 0's
        clean_partial(out)
        # A run that dies unrecorded still shows as "running"; a second stage's method is its chain (sft→dpo).
        store.write(out / METRICS, _header(cfg, hashed) | stages.header(cfg))
    # Under accelerate/torchrun each process is already its own (the launcher started it), and the
    # trainer must join the launcher's process group from this very process: `isolate` is moot.
    if not cfg.isolate or distributed.world_size() > 1:
        return _execute(cfg, hashed)
    return _run_isolated(cfg, out, hashed)


def _earlier_result(cfg: DictConfig, out: Path, hashed: str) -> dict | None:
    """This run's own finished record (resume), or a finished twin's copied from `reuse`; else None."""
    if cfg.force:
        return None
    done = finished(out, hashed)
    if done is not None:
        log.info("skipping %s: finished earlier with the same config (force=true reruns it)", out,
                 extra=console.CONSOLE)
        return done
    source = reusable(cfg.reuse, hashed)
    if source is not None and distributed.is_main():
        return adopt(source, out)
    return None


def _run_isolated(cfg: DictConfig, out: Path, hashed: str) -> dict:
    """The run in a fresh process, supervised: a stop signal is passed on, and a death it could not
    record itself is recorded for it."""
    import os

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_child, args=(OmegaConf.to_container(cfg), hashed), name=f"bench-{cfg.method.name}")
    # device=cuda:N: the run's process sees GPU N alone (the Trainer would take every GPU it sees).
    with devices.environment(devices.pinned_environment(str(cfg.device), os.environ.get("CUDA_VISIBLE_DEVICES"))):
        child.start()
    try:
        child.join()
    except BaseException as err:  # a stop signal (or Ctrl-C) reached this, the sweep's process
        _stopped_while_running(child, out, err)
    return _after_child(child, out)


def _stopped_while_running(child, out: Path, err: BaseException):
    """Stop the run process the way this process was stopped, record it if it could not, re-raise."""
    stop = signals.as_interrupted(err)
    if stop is None and not isinstance(err, SystemExit):
        raise err
    # A SystemExit here is a scheduler's handler exiting this process (submitit's requeue on
    # preemption or near the time limit): the run process must not go on unsupervised, so it is
    # stopped as SIGTERM stops it, and records that; the requeued job resumes the run.
    passed_on = stop or signals.Interrupted(signal.SIGTERM)
    _stop_child(child, passed_on)
    record = store.read(out / METRICS)
    if record.get("status") == "running":  # the run process could not record it in time
        store.write(out / METRICS, record | interrupted(passed_on, "unknown (the run process ended unrecorded)"))
    if stop is None:
        raise err
    raise stop from None


def _after_child(child, out: Path) -> dict:
    """The finished run process's record, completed where it died before it could write it."""
    record = store.read(out / METRICS)
    if record.get("status") == "running":  # the child died before it could say so itself
        code = child.exitcode
        signum = -code if code is not None and code < 0 else (code or 0) - 128
        if signum in (*signals.STOP, signal.SIGINT):  # before its handlers were in, or after its record
            stop = signals.Interrupted(signum)
            store.write(out / METRICS, record | interrupted(stop, "unknown (before the run process could record it)"))
            raise stop
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            # SIGKILL is also how the kernel's out-of-memory killer ends a process.
            hint = " (the out-of-memory killer sends SIGKILL: check peak memory)" if code == -signal.SIGKILL else ""
            record |= {"status": "killed", "error": f"run process killed by {name}{hint}"}
        else:
            record |= {"status": "failed", "error": f"run process exited with code {code} before finishing"}
        store.write(out / METRICS, record)
    elif record.get("status") == "interrupted":
        # The run process alone was signalled and recorded it: the sweep stops too, as it would have
        # had the signal reached it, and the parent leaves the child's record as it is.
        raise signals.Interrupted(signal.Signals[record["interrupted/signal"]])
    return record


# How long the run process may take to record an interruption before it is killed.
GRACE_S = 30


def _stop_child(child, stop: signals.Interrupted) -> None:
    """Pass the stop on to the run process and wait for it to record it (SIGKILL after GRACE_S)."""
    import os

    if stop.signum == signal.SIGINT:
        # Ctrl-C in a terminal reaches the whole process group: the run process has its own
        # KeyboardInterrupt already, and a second one could cut its record short.
        child.join(timeout=5)
        if child.is_alive():
            os.kill(child.pid, signal.SIGTERM)
    elif child.is_alive():
        os.kill(child.pid, stop.signum)  # its handler raises once; a second copy (Slurm's) is ignored
    child.join(timeout=GRACE_S)
    if child.is_alive():
        child.kill()
        child.join()


def interrupted(stop: signals.Interrupted | None, phase: str, error: str | None = None) -> dict:
    """The record's fields for a run that a stop signal ended (None: an exit that no signal of ours
    raised, with `error` saying what it was)."""
    return {
        "status": "interrupted",
        "error": error or f"interrupted by {stop.name} during {phase}; rerun the same command to resume",
        "interrupted/signal": stop.name if stop else "exit",
        "interrupted/phase": phase,
    }


def finished(out: Path, config_hash_: str) -> dict | None:
    """The earlier record of this run folder if it finished with this very config, else None."""
    path = out / METRICS
    if not path.exists():
        return None
    try:
        record = store.read(path)
    except BenchError:  # unreadable or undecodable: never trusted, rerun
        return None
    ok = record.get("status") == "success" and record.get("config_hash") == config_hash_
    return record if ok else None


def reusable(folders, config_hash_: str) -> Path | None:
    """A finished run with this very config below any of `folders` (reuse=[...]), or None."""
    for folder in map(Path, folders):
        for path in sorted(folder.expanduser().rglob(METRICS)) if folder.expanduser().is_dir() else []:
            if finished(path.parent, config_hash_) is not None:
                return path.parent
    return None


def adopt(source: Path, out: Path) -> dict:
    """Copy a finished identical run into this run's folder instead of training it again; its record
    keeps what it measured and when (its commit), and says where it came from (`reused_from`)."""
    import shutil

    for item in source.iterdir():
        if item.name in (METRICS, "wandb") or item.name.startswith("."):
            continue
        target = out / item.name
        shutil.copytree(item, target, dirs_exist_ok=True) if item.is_dir() else shutil.copy2(item, target)
    record = store.read(source / METRICS)
    weights = record.get("train/weights_dir")
    record |= {"reused_from": str(source), "output_dir": str(out),
               "reused/weights": bool(weights) and (out / str(weights)).is_dir()}
    store.write(out / METRICS, record)  # last: a copy cut short is no finished run
    log.info("reusing %s: %s finished with the same config (its record, not a new measurement)", out, source)
    return record


def clean_partial(out: Path) -> None:
    """Remove what a killed attempt left half-written (temporary files and folders)."""
    import shutil

    for path in out.glob("*.tmp*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in out.glob(".*.tmp*"):
        path.unlink()


def _header(cfg: DictConfig, hashed: str) -> dict:

    return {
        "status": "running",
        "method": cfg.method.name,
        "method/adapter": adapter_name(cfg.method),  # the trainer a variant reuses (dapo -> grpo)
        "model": cfg.model.name,
        # A task that is a family of datasets (reasoning_gym) is one row per dataset in the report.
        "task": f"{cfg.task.name}/{cfg.task.dataset}" if cfg.task.get("dataset") else cfg.task.name,
        "seed": int(cfg.seed),
        "quant": cfg.quant.name,
        "weights": cfg.model.weights,
        "peft/mode": finetuning.mode(cfg.peft),
        "peft/r": finetuning.rank(cfg.peft),
        "peft/target_modules": OmegaConf.to_container(cfg.peft).get("target_modules") if cfg.peft else None,
        "config_hash": hashed,
        # The sweep's own axes beyond the keys above: runs that differ here are different report rows.
        "overrides": grouping_overrides(cfg.get("overrides") or []),
        "dist/world_size": distributed.world_size(),  # processes of a data-parallel job (accelerate)
        "output_dir": str(cfg.output_dir),
        **store.git_info(),
        **store.versions(),
    }


# Overrides that never make a different row: the seed (rows aggregate seeds), the keys the report
# already groups by, and where or how a run is recorded.
_NOT_AN_AXIS = ("seed", "method", "model", "task", "quant", "peft", "peft.r", "model.weights", "output_dir",
                "cache_dir", "logger", "isolate", "force", "experiment", "debug", "eval", "eval.split", "tuned",
                "init_from", "reuse")  # a second stage's row is its chain (sft→dpo), whichever folder the first lies in


def grouping_overrides(overrides: list[str]) -> str:
    """The overrides that define a report row, sorted: "method.args.beta=0.2 train.args.learning_rate=3e-4"."""
    kept = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in _NOT_AN_AXIS or key.startswith(("hydra.", "logger.")):
            continue
        kept.append(item.lstrip("+~"))
    return " ".join(sorted(kept))


def _status(err: BaseException) -> str:
    import torch

    from bench.measure.metrics import Diverged

    if isinstance(err, Diverged):
        return "diverged"
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return "oom"
    return "failed"


def _child(cfg: dict, hashed: str) -> None:
    """The isolated run process: the run, and the exit code a shell gives a signalled process."""
    import os
    import sys

    # submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise) is its job
    # process's to handle, by requeueing; Slurm sends it to every process of the step, and by default
    # it would kill this one unrecorded. The parent stops this process, which then records it.
    preempt = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    if preempt is not None and preempt not in (*signals.STOP, signal.SIGINT):
        signal.signal(preempt, signal.SIG_IGN)
    try:
        _execute(cfg, hashed)
    except BaseException as err:
        stop = signals.as_interrupted(err)
        if stop is None:
            raise
        sys.exit(stop.exit_code)


def _execute(cfg, hashed: str) -> dict:
    if not isinstance(cfg, DictConfig):  # in the isolated child, from a plain container
        cfg = OmegaConf.create(cfg)
        console.setup(Path(cfg.output_dir), cfg.verbose)  # the terminal quiet, <run>/run.log complete
    elif console.quiet():  # a run in the sweep's process (isolate=false): Hydra set the filter, not the routes
        console.route_libraries(verbose=False)
    with signals.interruptible():
        return _record(cfg, hashed)


def _record(cfg: DictConfig, hashed: str) -> dict:
    """The run, recorded whatever happens: plan, train and evaluate, then its costs and its files."""
    secrets.install_log_filter()
    out = Path(cfg.output_dir)
    record = _header(cfg, hashed) | stages.header(cfg)  # as the parent wrote it, should the plan fail
    started = time.perf_counter()
    main = distributed.is_main()
    signals.set_phase("validate")
    if main:
        store.write_config(out / "config_resolved.yaml", cfg)
    try:
        plan = resolve(cfg)  # cheap: fails before any model loads
        record["config_hash"] = plan.config_hash
        record.update(_train_and_evaluate(plan, record))
        record["status"] = "success"
    except Exception as err:  # record the failure, then let the caller (and a sweep) see it
        record.update(_failure(err))
        log.error("run %s: %s · %s", record["status"], record["error"], console.failure_details(out, record))
    except BaseException as err:
        record.update(_stopped(err))  # re-raises anything that is not a stop
        record["time/total_s"] = _own_time(started, record)
        if main:
            store.write(out / METRICS, record)
        log.error("run %s: %s", record["status"], record["error"])
        raise
    record.update(_costs(started, record))
    if record["status"] == "success":  # a second stage: the whole pipeline's cost
        record.update(stages.charge(plan.stage, record))
    if main:
        _publish(cfg, out, record)
    return record


def _failure(err: Exception) -> dict:
    """A failed run's status and error: the message alone for a BenchError, else a traceback's tail."""
    out = {"status": _status(err), "error": str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"}
    if hasattr(err, "step"):
        out["train/diverged_step"] = err.step
    if not isinstance(err, BenchError):
        out["traceback"] = "".join(traceback.format_exc().splitlines(keepends=True)[-30:])
    return out


def _stopped(err: BaseException) -> dict:
    """An interrupted run's fields (a stop signal, or a scheduler's SystemExit); anything else re-raised."""
    stop = signals.as_interrupted(err)
    if stop is not None:
        return interrupted(stop, signals.phase())
    if isinstance(err, SystemExit):  # from a signal handler of the job's scheduler (submitit's
        # requeue on preemption or near its time limit calls sys.exit inside the run)
        return interrupted(None, signals.phase(), (
            f"the job exited during {signals.phase()} (SystemExit {err.code}; under submitit, its requeue on "
            "preemption or time limit); the requeued job or a rerun resumes"))
    raise err


def _own_time(started: float, record: dict) -> float:
    """The run's own time: a wait for its GPU (bench.system.devices.turn) is another run's."""
    return round(time.perf_counter() - started - record.get("time/gpu_wait_s", 0.0), 3)


def _costs(started: float, record: dict) -> dict:
    """time/total_s, and time/full_s: the run's own time plus the original cost of shared work it found
    cached, so that a table charges every method the same whichever ran first."""
    total = _own_time(started, record)
    full = (total + (record.get("data/build_s") or 0) * bool(record.get("data/build_cached"))
            + (record.get("eval/base_s") or 0) * bool(record.get("eval/base_cached")))
    return {"time/total_s": total, "time/full_s": round(full, 3)}


def _publish(cfg: DictConfig, out: Path, record: dict) -> None:
    """The model card, metrics.json, then W&B (whose folder the record names once it is written)."""
    _card(cfg, out, record)
    store.write(out / METRICS, record)
    try:
        wandb_dir = tracking.log_run(cfg, out, record)
    except Exception as err:  # a tracker problem must not turn a finished run into a failed one
        log.warning("W&B logging failed: %s", err)
    else:
        if wandb_dir:
            record["wandb/dir"] = wandb_dir
            store.write(out / METRICS, record)


def _card(cfg: DictConfig, out: Path, record: dict) -> None:
    """The saved weights' model card, once the run's metrics are known."""
    folder = out / str(record.get("train/weights_dir", ""))
    if record.get("status") != "success" or not record.get("train/weights_dir") or not folder.is_dir():
        return
    try:
        from bench.recipe import cards

        cards.write_card(folder, cfg, record)
    except Exception as err:  # a card problem must not turn a finished run into a failed one
        log.warning("model card for %s not written: %s", folder, err)


def _train_and_evaluate(plan: Plan, record: dict) -> dict:
    from bench.recipe import train

    cfg, runtime, out = plan.cfg, plan.runtime, plan.output_dir
    # One run per GPU at a time, its turn taken before this process puts anything on the GPU.
    gpu = devices.gpu_key(runtime.device, runtime.uuid) if distributed.world_size() == 1 else None
    if gpu is not None:
        signals.set_phase("gpu-wait")  # what a job killed in the queue records
    with devices.turn(gpu, cache_root(cfg.cache_dir) / "locks") as waited:
        record["time/gpu_wait_s"] = waited["waited_s"]
        runtime.activate()
        result = {**store.system_info(runtime.device, runtime.index), "sys/precision": runtime.precision,
                  "time/gpu_wait_s": waited["waited_s"]}
        result.update(plan.audit.as_metrics())
        result.update(train.train(plan))
        if cfg.eval.enabled and distributed.is_main():  # the job's adapter, scored once

            with train.phase("eval", runtime.device, result):
                result.update(evaluate.evaluate_run(cfg, runtime, train.weights_dir(out), stage=plan.stage))
    return result
