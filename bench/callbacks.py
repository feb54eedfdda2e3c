"""Hydra callbacks, registered in conf/config.yaml as `hydra.callbacks.<name>._target_`.

`bench.callbacks.ReportCallback` writes the report at the end of every multirun.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Writes the report (summary.md/csv/json, plots) into the sweep folder when a multirun ends.

    Logs it to W&B too when the sweep used the W&B logger, in a `report-<group>` run of the same group.
    A report failure is only a warning: a finished sweep must not turn into a failed one.

    Hydra calls on_multirun_end only when every job returned: a job that raises makes the sweeper
    raise before it. So a harness whose jobs record their failure and return can pass
    `exit_on_failed_runs: true`: once the report is written, a sweep with failed runs (any status but
    success or skipped) then exits with status 1.
    """

    def __init__(self, exit_on_failed_runs: bool = False) -> None:
        self.exit_on_failed_runs = exit_on_failed_runs

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench import distributed

        if not distributed.is_main():  # a data-parallel sweep: one report, from rank 0
            return
        try:
            from bench.report import write_report

            sweep = Path(config.hydra.sweep.dir)
            logger = config.get("logger") or {}
            report = write_report(
                [sweep],
                wandb=logger.get("name") == "wandb",
                project=logger.get("project") or "rft-bench",
                entity=logger.get("entity"),
                group=logger.get("group"),  # None: the sweep folder's name, as bench.tracking does per run
                mode=logger.get("mode"),
            )
        except Exception:  # noqa: BLE001  (anything: the sweep itself has already finished)
            log.warning("bench.report failed after the sweep; rerun `python -m bench.report`", exc_info=True)
            return
        if report is None:
            log.warning("bench.report: no metrics.json below %s", sweep)
            return
        print(report.markdown)
        log.info("bench.report: wrote %s", ", ".join(str(f) for f in report.files))
        status = report.runs["status"]
        failed = int((~status.isin(["success", "skipped", "running"])).sum())
        running = int((status == "running").sum())  # another process's (a second sweep into this folder)
        if (failed or running) and self.exit_on_failed_runs:
            parts = [f"{failed} of {len(report.runs)} runs failed"] if failed else []
            if running:
                parts.append(f"{running} still running in another process (its sweep's report will include them)")
            raise SystemExit(f"{'; '.join(parts)}; see {sweep / 'summary.md'}")


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper will launch: its own expansion of the sweep's overrides."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra._internal.utils import create_config_search_path
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from bench.config import CONF_DIR

        loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
        params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(
            params + list(config.hydra.overrides.task)
        )
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:  # noqa: BLE001  (another sweeper's syntax: progress goes on without a total)
        return None


class ProgressCallback(Callback):
    """Says which run of how many is starting, and with which overrides (the phases and steps are
    logged by the run itself)."""

    total: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ProgressCallback.total = count_jobs(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = config.hydra.job
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        of = f"/{self.total}" if self.total else ""
        log.info("run %d%s: %s", job.num + 1, of, " ".join(config.hydra.overrides.task))
