"""Tasks: prompts with gold answers, a held-out split, and the reward every method is scored by."""

from __future__ import annotations

from omegaconf import DictConfig

from bench import BenchError
from bench.tasks.base import Example, Task
from bench.tasks.rewards import REWARDS, last_number

__all__ = ["Example", "Task", "REWARDS", "last_number", "load_task"]


def load_task(cfg: DictConfig) -> Task:
    """Build the task that `cfg.task.name` names (arithmetic: generated; gsm8k: hub or local jsonl)."""
    from bench.tasks import arithmetic, gsm8k

    builders = {"arithmetic": arithmetic.build, "gsm8k": gsm8k.build}
    if cfg.name not in builders:
        raise BenchError(f"Unknown task {cfg.name!r}; tasks: {', '.join(builders)}.")
    return builders[cfg.name](cfg)
