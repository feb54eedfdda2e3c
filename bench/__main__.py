"""`python -m bench [overrides]`: the Hydra app. All the work is in bench.run.runner.run(cfg)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import methods
from bench import BenchError
from bench.config.compose import CONF_DIR, unknown_choice
from bench.system import distributed, signals

BAD_INPUT = 2  # the exit status of a command line that names what does not exist (as bench.estimate's)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from bench.run.runner import run

    if distributed.world_size() > 1:
        try:
            distributed.require_shared_dir(HydraConfig.get())
        except BenchError as err:  # the same for every job of a sweep: end it now, before any work
            raise SystemExit(str(err)) from None
    from omegaconf import open_dict

    with open_dict(cfg):  # what this job's command line chose: the fairness audit counts it as declared
        cfg.overrides = list(HydraConfig.get().overrides.task)
    if HydraConfig.get().mode == RunMode.MULTIRUN and methods.why_unavailable(cfg.method) is not None:
        # A sweep over every method (`method=glob(*)`) skips one that the installed TRL lacks, with no
        # record (the sweep's start said so once, bench.run.callbacks); named alone, it fails at validation.
        return None
    record = run(cfg)
    if record.get("status") != "success" and HydraConfig.get().mode == RunMode.RUN:
        # A single run: its failure is the process's. In a sweep the job returns normally, so the
        # launcher goes on with the other jobs (a SystemExit would end the whole sweep), and the
        # sweep's end callback writes the report, then exits non-zero if any run failed.
        raise SystemExit(f"run {record.get('status')}: {record.get('error')}")
    # The headline metric, so an optimising sweeper (e.g. Optuna) can search over the harness as is.
    return record.get("eval/accuracy")


def cli() -> None:
    """`python -m bench`: the app, with SIGTERM/SIGHUP (Slurm, `kill`, a closed terminal) and Ctrl-C
    ending the sweep with the interrupted run recorded as such (bench.system.signals). `--list` prints
    the methods, tasks, models, experiments and entry points instead (bench.run.catalog). An option no
    config group holds (`method=grop`) exits 2 with one did-you-mean line, before Hydra starts."""
    if sys.argv[1:] == ["--list"]:  # before Hydra, which would read it as an override
        from bench.run import catalog
        from bench.system import console

        console.setup(None)  # libraries' import-time warnings (bitsandbytes' kernels) stay off the list
        sys.exit(catalog.main())
    problem = unknown_choice(sys.argv[1:])
    if problem is not None:  # a typo in `method=` or `task=`: one line, not Hydra's list and search path
        print(f"bench: {problem}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    with signals.interruptible():
        try:
            main()
        except BaseException as err:
            stop = signals.as_interrupted(err)
            if stop is None:
                raise
            print(
                f"bench: stopped by {stop.name}; the interrupted run says so in its metrics.json. "
                "Rerun the same command to resume: finished runs are skipped.",
                file=sys.stderr,
            )
            sys.exit(stop.exit_code)


if __name__ == "__main__":
    cli()
