"""An isolated run: the plan run in a fresh process, supervised. Peak memory is then the run's alone (a
sweep runs its jobs one after another in one process) and a hard crash fails this run only; a stop signal
is passed on, and a death the run process could not record is recorded for it."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bench.recipe.plan import Plan
from bench.run import record
from bench.system import console, devices, signals

# How long the run process may take to record an interruption before it is killed.
GRACE_S = 30


def run_isolated(plan: Plan, execute: Callable[[Plan], dict]) -> dict:
    """`execute(plan)` in a fresh process (it receives the plan as it is, and resolves nothing again);
    returns its record."""
    # The plan travels in a file, not as the process's argument: spawn writes the arguments into a pipe
    # while this process still holds the pipe's read end, so a run process that died before reading more
    # than the pipe holds (64 KiB; a task's data is more) would leave this process blocked for good.
    # The name matches what a rerun cleans up (resume.clean_partial), should this process be killed.
    handoff = plan.output_dir / f".plan.tmp{os.getpid()}"
    try:
        handoff.write_bytes(pickle.dumps(plan))
    except Exception as err:  # the header says "running": the record must say why it never ran
        handoff.unlink(missing_ok=True)
        result = plan.header | record.failure(err)
        record.write(plan.output_dir, result)
        return result
    try:
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_child, args=(execute, handoff), name=f"bench-{plan.config.method.name}")
        # device=cuda:N: the run's process sees GPU N alone (the Trainer would take every GPU it sees).
        pinned = devices.pinned_environment(str(plan.config.device), os.environ.get("CUDA_VISIBLE_DEVICES"))
        with devices.environment(pinned):
            child.start()
        try:
            child.join()
        except BaseException as err:  # a stop signal (or Ctrl-C) reached this, the sweep's process
            _stopped_while_running(child, plan, err)
    finally:
        handoff.unlink(missing_ok=True)
    return _after_child(child, plan)


def _child(execute: Callable[[Plan], dict], handoff: Path) -> None:
    """The isolated run process: the run, and the exit code a shell gives a signalled process."""
    plan = pickle.loads(handoff.read_bytes())
    # submitit's preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise) is its job
    # process's to handle, by requeueing; Slurm sends it to every process of the step, and by default
    # it would kill this one unrecorded. The parent stops this process, which then records it.
    preempt = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    if preempt is not None and preempt not in (*signals.STOP, signal.SIGINT):
        signal.signal(preempt, signal.SIG_IGN)
    console.setup(plan.output_dir, bool(plan.config.verbose))  # the terminal quiet, <run>/run.log complete
    try:
        execute(plan)
    except BaseException as err:
        stop = signals.as_interrupted(err)
        if stop is None:
            raise
        sys.exit(stop.exit_code)


def _stopped_while_running(child, plan: Plan, err: BaseException):
    """Stop the run process the way this process was stopped, record it if it could not, re-raise."""
    stop = signals.as_interrupted(err)
    if stop is None and not isinstance(err, SystemExit):
        raise err
    # A SystemExit here is a scheduler's handler exiting this process (submitit's requeue on
    # preemption or near the time limit): the run process must not go on unsupervised, so it is
    # stopped as SIGTERM stops it, and records that; the requeued job resumes the run.
    passed_on = stop or signals.Interrupted(signal.SIGTERM)
    _stop_child(child, passed_on)
    last = record.read(plan.output_dir)
    if last.get("status") == "running":  # the run process could not record it in time
        record.write(
            plan.output_dir, last | record.interrupted(passed_on, "unknown (the run process ended unrecorded)")
        )
    if stop is None:
        raise err
    raise stop from None


def _after_child(child, plan: Plan) -> dict:
    """The finished run process's record, completed where it died before it could write it."""
    out = plan.output_dir
    last = record.read(out)
    if last.get("status") == "running":  # the child died before it could say so itself
        code = child.exitcode
        signum = -code if code is not None and code < 0 else (code or 0) - 128
        if signum in (*signals.STOP, signal.SIGINT):  # before its handlers were in, or after its record
            stop = signals.Interrupted(signum)
            record.write(out, last | record.interrupted(stop, "unknown (before the run process could record it)"))
            raise stop
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            # SIGKILL is also how the kernel's out-of-memory killer ends a process.
            hint = " (the out-of-memory killer sends SIGKILL: check peak memory)" if code == -signal.SIGKILL else ""
            last |= {"status": "killed", "error": f"run process killed by {name}{hint}"}
        else:
            last |= {"status": "failed", "error": f"run process exited with code {code} before finishing"}
        record.write(out, last)
    elif last.get("status") == "interrupted":
        # The run process alone was signalled and recorded it: the sweep stops too, as it would have
        # had the signal reached it, and the parent leaves the child's record as it is.
        raise signals.Interrupted(signal.Signals[last["interrupted/signal"]])
    return last


def _stop_child(child, stop: signals.Interrupted) -> None:
    """Pass the stop on to the run process and wait for it to record it (SIGKILL after GRACE_S)."""
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
