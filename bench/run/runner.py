"""One benchmark run, top to bottom: plan, resume check, train (setup, build, train, save), evaluate,
record. Every phase is timed; `metrics.json` is always written, atomically (bench.run.record).

`run(cfg)` is the whole recipe and is what tests call; `bench.__main__` only wraps it for Hydra. This
module orchestrates: the plan is bench.recipe.plan, resume and reuse bench.run.resume, the isolated run
process bench.run.supervise, the record bench.run.record.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.config import history, stages
from bench.config.compose import apply_tuned
from bench.recipe import evaluate
from bench.recipe.models import cache_root
from bench.recipe.plan import Plan, make
from bench.records import store
from bench.run import record, resume, supervise
from bench.run.record import METRICS
from bench.system import console, devices, distributed, secrets, signals

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Run one configuration; always writes `metrics.json` in `cfg.output_dir` and returns it.

    A finished run (`status: success` with the same config hash) is skipped unless `force=true`.
    With `isolate: true` the work happens in a fresh process, so peak memory is this run's alone
    (a sweep runs jobs one after another in one process) and a hard crash fails only this run.
    """
    apply_tuned(cfg)  # a tuned table's settings for this method, before the config is hashed or checked
    history.complete(cfg)  # keys whose default is not in YAML (data.label_noise: see its comment)
    OmegaConf.resolve(cfg)  # interpolations filled in place; the run's plan is made from the result
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
        except OSError:  # a file system without flock on folders: run unguarded
            pass
        yield True
    finally:
        os.close(fd)  # releases the lock


def _run(cfg: DictConfig, out: Path) -> dict:
    secrets.install_log_filter()
    started = time.perf_counter()
    if console.quiet():  # the plan's checks wrap a model (peft warns): Hydra set the filter, not the routes
        console.route_libraries(verbose=False)
    try:
        plan = make(cfg)  # in seconds, before any weights load: a bad config fails here, recorded
    except Exception as err:
        return record.unplanned(cfg, out, err, started)
    earlier = resume.earlier_result(plan)
    if earlier is not None:
        return earlier
    if distributed.is_main():  # data parallel: one record per job, rank 0's
        resume.clean_partial(out)
    record.write(out, plan.header)  # a run that dies unrecorded still shows as "running"
    if not plan.isolated:
        return execute(plan)
    return supervise.run_isolated(plan, execute)


def execute(plan: Plan) -> dict:
    """The planned run in this process (the sweep's, or the isolated run process), under the stop signals."""
    with signals.interruptible():
        return _record(plan)


def _record(plan: Plan) -> dict:
    """The run, recorded whatever happens: train and evaluate, then its costs and its files."""
    secrets.install_log_filter()
    signals.set_phase("start")  # not the phase the sweep's previous run ended in
    out = plan.output_dir
    result = dict(plan.header)
    started = time.perf_counter()
    if distributed.is_main():
        store.write_config(out / "config_resolved.yaml", plan.config)
    try:
        result.update(_train_and_evaluate(plan, result))
        result["status"] = "success"
    except Exception as err:  # record the failure, then let the caller (and a sweep) see it
        result.update(record.failure(err))
        log.error("run %s: %s · %s", result["status"], result["error"], console.failure_details(out, result))
    except BaseException as err:
        result.update(record.stopped(err))  # re-raises anything that is not a stop
        result["time/total_s"] = record.own_time(started, result)
        record.write(out, result)
        log.error("run %s: %s", result["status"], result["error"])
        raise
    result.update(record.costs(started, result))
    if result["status"] == "success":  # a second stage: the whole pipeline's cost
        result.update(stages.charge(plan.stage, result))
    if distributed.is_main():
        record.publish(plan, result)
    return result


def _train_and_evaluate(plan: Plan, result: dict) -> dict:
    from bench.recipe import train

    runtime = plan.runtime
    # One run per GPU at a time, its turn taken before this process puts anything on the GPU.
    gpu = devices.gpu_key(runtime.device, runtime.uuid) if distributed.world_size() == 1 else None
    if gpu is not None:
        signals.set_phase("gpu-wait")  # what a job killed in the queue records
    with devices.turn(gpu, cache_root(plan.config.cache_dir) / "locks") as waited:
        result["time/gpu_wait_s"] = waited["waited_s"]
        runtime.activate()
        measured = {
            **store.system_info(runtime.device, runtime.index),
            "sys/precision": runtime.precision,
            "time/gpu_wait_s": waited["waited_s"],
        }
        measured.update(plan.audit.as_metrics())
        measured.update(train.train(plan))
        if plan.config.eval.enabled and distributed.is_main():  # the job's adapter, scored once
            with train.phase("eval", runtime.device, measured):
                measured.update(evaluate.evaluate_run(plan, train.weights_dir(plan.output_dir)))
    return measured
