"""Hydra callbacks, registered in conf/config.yaml as `hydra.callbacks.<name>._target_`.

`bench.run.callbacks.ReportCallback` writes the report at the end of every multirun.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

import methods
from bench import BenchError
from bench.config.compose import CONF_DIR
from bench.system import console, distributed, files

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Writes the report (summary.md/csv/json, plots) into the sweep folder when a multirun ends, prints
    its tables, then one last line: how the runs ended, the sweep's folder and its summary.md.

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

        if not distributed.is_main():  # a data-parallel sweep: one report, from rank 0
            return
        if console.quiet():  # the report's estimates build models: libraries' warnings to the log, as in a run
            console.route_libraries(verbose=False)
        try:
            from bench.report.summary import write_report

            sweep = Path(config.hydra.sweep.dir)
            logger = config.get("logger") or {}
            report = write_report(
                [sweep],
                wandb=logger.get("name") == "wandb",
                project=logger.get("project") or "rft-bench",
                entity=logger.get("entity"),
                group=logger.get("group"),  # None: the sweep folder's name, as bench.records.tracking does per run
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
        print(sweep_ended(sweep, status), flush=True)  # the sweep's last line: where everything is
        failed = int((~status.isin(["success", "skipped", "running"])).sum())
        running = int((status == "running").sum())  # another process's (a second sweep into this folder)
        if (failed or running) and self.exit_on_failed_runs:
            parts = [f"{failed} of {len(report.runs)} runs failed"] if failed else []
            if running:
                parts.append(f"{running} still running in another process (its sweep's report will include them)")
            raise SystemExit(f"{'; '.join(parts)}; see {console.shown(sweep / 'summary.md')}")


def sweep_ended(sweep: Path, status) -> str:
    """The line a sweep ends with: how its runs ended, its folder and its report."""
    counts = ", ".join(f"{n} {s}" for s, n in status.value_counts().items())
    return (
        f"sweep done: {len(status)} run{'s' if len(status) != 1 else ''} ({counts}) in {console.shown(sweep)}; "
        f"report: {console.shown(sweep / 'summary.md')}"
    )


def count_jobs(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper will launch: its own expansion of the sweep's overrides."""
    jobs = sweep_jobs(config)
    return None if jobs is None else len(jobs)


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job the basic sweeper will launch (None for another sweeper's syntax)."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra._internal.utils import create_config_search_path
        from hydra.core.override_parser.overrides_parser import OverridesParser

        loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
        params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(
            params + list(config.hydra.overrides.task)
        )
        return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    except Exception:  # noqa: BLE001  (another sweeper's syntax: progress goes on without a total)
        return None


def unavailable_methods(jobs: list[list[str]]) -> dict:
    """The sweep's methods that the installed TRL lacks: name -> its adapter (methods.Method)."""
    from omegaconf import OmegaConf

    out = {}
    for name in sorted({o.split("=", 1)[1] for job in jobs for o in job if o.startswith("method=")}):
        try:  # the method's YAML alone (Hydra is composing the sweep itself): a variant names its adapter
            entry = OmegaConf.load(CONF_DIR / "method" / f"{name}.yaml")
        except OSError:  # an unknown name: its job's validation says so
            continue
        if methods.why_unavailable(entry) is not None:
            out[name] = methods.get(methods.adapter_name(entry))
    return out


class ProgressCallback(Callback):
    """Says which run of how many is starting, and with which overrides (the phases and steps are
    logged by the run itself)."""

    total: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(config)
        skipped = unavailable_methods(jobs or [])
        ProgressCallback.total = None if jobs is None else len(jobs)
        if skipped and jobs and all(any(o == f"method={n}" for n in skipped for o in job) for job in jobs):
            raise SystemExit(next(iter(skipped.values())).unavailable())  # nothing would run: say why
        if skipped:  # said once for the sweep; the jobs return without a record (bench.__main__)
            from importlib.metadata import version

            needs = "; ".join(sorted({method.needs for method in skipped.values()}))
            log.warning(
                "skipping %s: the installed TRL %s lacks their trainers (%s). The default lock has "
                "them: `make setup`, constraints.txt.",
                ", ".join(skipped),
                version("trl"),
                needs,
            )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        log.info(
            "%s: %s", self._label(config), " ".join(config.hydra.overrides.task) or "(defaults)", extra=console.CONSOLE
        )

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """The run's end line, from its own record: status, peak memory, time, accuracy."""
        path = Path(config.hydra.runtime.output_dir) / "metrics.json"
        if not path.is_file():  # a job that returned without a run (a method this TRL lacks: said at the start)
            return
        try:
            record = files.read_json(path)
        except BenchError as err:
            log.warning("%s: %s", self._label(config), err)
            return
        log.info(console.ended(self._label(config), record, path.parent), extra=console.CONSOLE)

    def _label(self, config: DictConfig) -> str:
        if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
            return "run"
        return f"run {config.hydra.job.num + 1}{f'/{self.total}' if self.total else ''}"
