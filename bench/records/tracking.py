"""W&B logging of a finished run: its training curve, its metrics.json as summary and as a table.

Done by the harness after the fact rather than by each TRL trainer, so every method is logged the
same way (PPO's trainer logs differently from the Trainer-based ones). WANDB_MODE=offline (the
default here) writes wandb/offline-run-* under the run folder and opens no connection.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.system import secrets


def log_run(cfg: DictConfig, out: Path, record: dict) -> str | None:
    """Log one run; returns the W&B run directory (or None when logging is off)."""
    if cfg.logger.name != "wandb":
        return None
    import wandb

    group = cfg.logger.group or Path(cfg.output_dir).parent.name
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        group=group,
        name=f"{record['method']}-seed{record['seed']}-{record['config_hash']}",
        tags=list(cfg.logger.tags) + [record["method"], record["status"]],
        config=secrets.scrub(OmegaConf.to_container(cfg, resolve=True)),
        dir=str(out),
        mode=cfg.logger.mode,
        reinit="finish_previous",
        # Its run history and summary are in its own files beside the run; the terminal stays quiet.
        settings=wandb.Settings(silent=not cfg.verbose),
    )
    try:
        log_path = out / "train_log.json"
        for entry in json.loads(log_path.read_text()) if log_path.exists() else []:
            step = entry.get("step")
            run.log(
                {f"train/{k}": v for k, v in entry.items() if isinstance(v, (int, float)) and k != "step"},
                step=step,
            )
        scalars = secrets.scrub(
            {k: v for k, v in record.items() if isinstance(v, (int, float, str, bool)) and v is not None}
        )
        run.summary.update(scalars)
        table = wandb.Table(columns=["key", "value"], data=[[k, str(v)] for k, v in sorted(scalars.items())])
        run.log({"metrics": table})
        return run.dir
    finally:
        run.finish()
