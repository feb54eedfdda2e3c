"""Tasks: registered by decorator (`register_task`), one file each, found by importing this package."""

from __future__ import annotations

from omegaconf import DictConfig

from bench import BenchError
from bench.tasks.base import TASKS, Example, Task, register_task
from bench.tasks.rewards import last_number

__all__ = ["Example", "Task", "TASKS", "register_task", "last_number", "load_task"]


def load_task(cfg: DictConfig) -> Task:
    """Build the task that `cfg.name` (conf/task/<name>.yaml) names."""
    try:
        entry = TASKS.get(cfg.name)
    except KeyError as err:
        raise BenchError(
            f"{err.args[0]} A task is one file in bench/tasks/ with @register_task and one YAML in "
            "conf/task/ (docs/adding-a-task.md)."
        ) from err
    return entry.build(cfg)
