"""SIGTERM and SIGHUP end a run the way Ctrl-C does, and the run's record says so.

Slurm sends SIGTERM on preemption and at the time limit, `kill` sends it by default, and a closed
terminal sends SIGHUP. Python's default for both is to die on the spot, which leaves the run's record
at `status: running` for good. Inside `interruptible()` either signal raises `Interrupted` (a
BaseException, like KeyboardInterrupt, so that it ends a Hydra sweep instead of being recorded as one
job's failure and skipped), the run records `status: interrupted` with the signal and the phase it was
in, and the process exits with 128 + the signal's number, as a shell reports a process killed by it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any

STOP = (signal.SIGTERM, signal.SIGHUP)
_state: dict[str, Any] = {"phase": "start", "received": None}


class Interrupted(BaseException):
    """A stop signal arrived; `name` is the signal's name (SIGTERM, SIGHUP, SIGINT for Ctrl-C)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.name = signal.Signals(self.signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def as_interrupted(err: BaseException) -> Interrupted | None:
    """The Interrupted this exception stands for (Ctrl-C's KeyboardInterrupt is SIGINT), else None."""
    if isinstance(err, Interrupted):
        return err
    if isinstance(err, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    return None


def set_phase(name: str) -> None:
    """The phase this process's run is in, for the record an interruption leaves."""
    _state["phase"] = name


def phase() -> str:
    return _state["phase"]


def received() -> Interrupted | None:
    """The stop signal this process has received, if any."""
    return _state["received"]


@contextmanager
def interruptible():
    """Turn SIGTERM and SIGHUP into `Interrupted` while inside; the previous handlers come back after.

    Only the first signal raises: a second one (Slurm signals every process of the job, and a parent
    forwards its own to the run process) arrives while the first is being recorded and must not cut
    that record short. Outside the main thread, where Python cannot install handlers, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _state["received"] is None:
            _state["received"] = stop = Interrupted(signum)
            raise stop

    previous = {s: signal.signal(s, handler) for s in STOP}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
