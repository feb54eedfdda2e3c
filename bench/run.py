"""One benchmark run, top to bottom: validate, load, data, train (measured), save, evaluate, record.

`run(cfg)` is the whole recipe and is what tests call; `bench.__main__` only wraps it for Hydra.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import BenchError, records
from bench.config import config_hash, validate
from bench.models import resolve_runtime

log = logging.getLogger(__name__)
METRICS = "metrics.json"


def run(cfg: DictConfig) -> dict:
    """Run one configuration; always writes `metrics.json` in `cfg.output_dir` and returns it.

    With `isolate: true` the work happens in a fresh process, so peak memory is this run's alone
    (a sweep runs jobs one after another in one process) and a hard crash fails only this run.
    """
    OmegaConf.resolve(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.get("isolate", False):
        return _execute(cfg)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_execute, args=(OmegaConf.to_container(cfg),), name=f"bench-{cfg.method.name}")
    child.start()
    child.join()
    path = out / METRICS
    record = records.read(path) if path.exists() else {}
    if child.exitcode != 0 and record.get("status") != "failed":
        # Killed (out of memory, segfault) before it could say so itself.
        record = {
            **_header(cfg),
            **record,
            "status": "failed",
            "error": f"run process exited with code {child.exitcode} before finishing",
        }
        records.write(path, record)
    return record


def _header(cfg: DictConfig) -> dict:
    return {
        "status": "running",
        "method": cfg.method.name,
        "model": cfg.model.name,
        "task": cfg.task.name,
        "seed": int(cfg.seed),
        "quant": cfg.quant.name,
        "weights": cfg.model.weights,
        "peft/r": int(cfg.peft.r),
        "peft/alpha": float(cfg.peft.alpha),
        "peft/target_modules": list(cfg.peft.target_modules),
        "config_hash": config_hash(cfg),
        "output_dir": str(cfg.output_dir),
        **records.git_info(),
        **records.versions(),
    }


def _execute(cfg) -> dict:
    if not isinstance(cfg, DictConfig):  # in the isolated child, from a plain container
        cfg = OmegaConf.create(cfg)
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    out = Path(cfg.output_dir)
    record = _header(cfg)
    started = time.perf_counter()
    (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg))
    try:
        record.update(_train_and_evaluate(cfg, out, record))
        record["status"] = "success"
    except Exception as err:  # record the failure, then let the caller (and a sweep) see it
        record["status"] = "failed"
        record["error"] = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, BenchError):
            record["traceback"] = traceback.format_exc()
        log.error("run failed: %s", record["error"])
    record["time/total_s"] = round(time.perf_counter() - started, 3)
    records.write(out / METRICS, record)
    try:
        from bench import tracking

        wandb_dir = tracking.log_run(cfg, out, record)
    except Exception as err:  # a tracker problem must not turn a finished run into a failed one
        log.warning("W&B logging failed: %s", err)
    else:
        if wandb_dir:
            record["wandb/dir"] = wandb_dir
            records.write(out / METRICS, record)
    return record


def _train_and_evaluate(cfg: DictConfig, out: Path, record: dict) -> dict:
    from bench import train

    runtime = resolve_runtime(cfg.device, cfg.precision)
    method, trainer_config = validate(cfg, runtime)  # cheap: fails before any model loads
    result = {**records.system_info(runtime.device), "sys/precision": runtime.precision}
    result.update(train.train(cfg, runtime, method, trainer_config, out))
    if cfg.eval.enabled:
        from bench import evaluate

        result.update(evaluate.evaluate_adapter(cfg, runtime, out / "adapter"))
    return result
