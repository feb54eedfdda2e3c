"""A quiet terminal, a complete log file.

The terminal shows what a user watches a sweep for: a line as each run starts and one as it ends
(status, peak memory, time, accuracy), TRL's progress bar, the harness's own warnings, and errors. Every
log line of every library goes to the run's log file (`<run>/run.log`), always: bitsandbytes' missing
kernels, transformers' load reports and FutureWarnings, lm-eval's progress. `verbose=true` puts all of it
on the terminal too.

Hydra configures the sweep's process from conf/hydra/job_logging/quiet.yaml (this module's
TerminalFilter on its console handler); an isolated run process configures itself with `setup`.
Hand-written: logging's own filters and handlers do the work; no library routes a run this way.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path

LOG_FILE = "run.log"
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
# A record logged with extra={"console": True} is meant for the terminal whatever its level.
CONSOLE = {"console": True}


class TerminalFilter(logging.Filter):
    """What reaches the terminal: lines marked for it, the harness's warnings, and every error."""

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = bool(verbose)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.levelno >= logging.ERROR or getattr(record, "console", False):
            return True
        return record.levelno >= logging.WARNING and record.name.split(".")[0] in ("bench", "methods", "__main__")


def route_libraries(verbose: bool) -> None:
    """Libraries that print through their own handlers log through the root logger instead (so the run's
    file keeps them and the terminal filter decides), and Python warnings become log records."""
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # each warning once per place, into the log file
    try:
        import transformers

        transformers.utils.logging.disable_default_handler()
        transformers.utils.logging.enable_propagation()
    except ImportError:  # pragma: no cover - a process that never imports transformers
        pass
    if not verbose:
        try:
            import datasets

            datasets.disable_progress_bars()  # "Map: 100%" bars; TRL's training bar stays
        except ImportError:  # pragma: no cover
            pass
        try:
            import transformers

            transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
        except ImportError:  # pragma: no cover
            pass


# Libraries that warn as they are imported, often before any run has set logging up, when Python would
# print the line bare on the terminal (logging's "last resort"): bitsandbytes says "Failed to load CPU
# gemm_4bit_forward from kernels-community: No module named 'kernels'" in every command, on any CPU with
# AVX512-BF16, about an optional kernel package that QLoRA does not need.
IMPORT_NOISE = ("bitsandbytes",)


def hold_import_noise() -> None:
    """Give each library in IMPORT_NOISE a null handler (the logging HOWTO's advice for libraries): an
    import-time warning before logging is set up is dropped instead of printed bare; once a run has set
    it up, the warning still propagates to the root logger, so run.log keeps it and the terminal does
    not show it. `import bench` calls this, before any library is imported."""
    for name in IMPORT_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def quiet() -> bool:
    """Whether the terminal is filtered (the root logger's handlers say so: no state of its own)."""
    return any(isinstance(f, TerminalFilter) and not f.verbose for h in logging.getLogger().handlers for f in h.filters)


def _log_stream():
    return next((h.stream for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)


@contextlib.contextmanager
def _to_log(redirect):
    stream = _log_stream() if quiet() else None
    if stream is None:
        yield
        return
    with redirect(stream):
        yield


def bars_to_log():
    """Progress bars of a library that offers no switch for them (lm-eval's) go to the run's log file
    while the block runs, when the terminal is quiet."""
    return _to_log(contextlib.redirect_stderr)


def prints_to_log():
    """What a trainer prints (PPO's "===training policy===") goes to the run's log file while the block
    runs, when the terminal is quiet; its progress bar (stderr) stays."""
    return _to_log(contextlib.redirect_stdout)


def quiet_trainer(trainer) -> None:
    """The Trainer's progress bar stays; its log dicts (printed each logging step, as lines when the output
    is not a terminal) go to the run's log file instead, when the terminal is quiet."""
    if not quiet():
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class LogLines(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logging.getLogger("bench.recipe.train").info("step %d: %s", state.global_step, logs)

    trainer.remove_callback(PrinterCallback)
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, ProgressCallback):
            callback.on_log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # the bar without the dicts written over it
    trainer.add_callback(LogLines())


def setup(out: Path | None, verbose: bool = False) -> None:
    """An isolated run process's logging: the terminal through TerminalFilter, everything to <out>/run.log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter(FORMAT))
    terminal.addFilter(TerminalFilter(verbose))
    root.addHandler(terminal)
    if out is not None:
        file = logging.FileHandler(Path(out) / LOG_FILE, mode="a", encoding="utf-8")
        file.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file)
    route_libraries(verbose)


def gib(n) -> str:
    return "–" if n is None else f"{n / 2**30:.2f} GiB"


def duration(seconds) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(int(round(float(seconds))), 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{float(seconds):.1f}s"


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when it lies below it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def failure_details(folder: Path, record: dict) -> str:
    """Where a failed run's story is: its traceback (metrics.json's `traceback` key; a BenchError's
    message is the whole story and has none) and its run.log, where it has one."""
    metrics = shown(Path(folder) / "metrics.json")
    parts = [f'traceback: {metrics}, key "traceback"' if record.get("traceback") else f"record: {metrics}"]
    if (Path(folder) / LOG_FILE).is_file():
        parts.append(f"log: {shown(Path(folder) / LOG_FILE)}")
    return " · ".join(parts)


def ended(label: str, record: dict, folder: Path | None = None) -> str:
    """The line a run ends with: status, peak memory, time, accuracy and its folder; for a failed run
    the error's first line and where its traceback and log are."""
    status = record.get("status", "unknown")
    if status not in ("success", "skipped"):
        error = str(record.get("error") or "").splitlines()[0:1]
        where = f" · {failure_details(folder, record)}" if folder is not None else ""
        return f"{label}: {status}: {error[0] if error else 'no error recorded'}{where}"
    accuracy = record.get("eval/accuracy")
    score = f"accuracy {accuracy:.3f}" if isinstance(accuracy, (int, float)) else "not scored"
    where = f" · {shown(folder)}" if folder is not None else ""
    return (
        f"{label}: {status} · peak {gib(record.get('sys/peak_mem_bytes'))} · "
        f"{duration(record.get('time/total_s'))} · {score}{where}"
    )
