"""`python -m bench [overrides]`: the Hydra app. All the work is in bench.run.run(cfg)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from bench.config import CONF_DIR


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from bench.run import run

    record = run(cfg)
    if record.get("status") != "success":
        # Failing the job makes a sweep exit non-zero at the end; the other jobs still run.
        raise SystemExit(f"run failed: {record.get('error')}")


if __name__ == "__main__":
    sys.exit(main())
