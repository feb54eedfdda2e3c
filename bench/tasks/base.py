"""The task contract: examples with per-example fields, reward functions that receive those fields,
a gold completion, and how lm-eval scores the held-out split.

A task is one file in bench/tasks/ (a `@register_task`-decorated builder) and one YAML in conf/task/.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import BenchError
from bench.system.registry import Registry

SPLITS = ("validation", "test")  # the held-out splits; train is Task.train


@dataclass(frozen=True)
class Example:
    prompt: str  # the user turn, instruction included
    # Per-example columns: every reward function receives them as keyword arguments (TRL passes
    # dataset columns to reward functions), so a reward can need more than a number (a game state).
    fields: dict
    gold: str  # a gold completion: SFT's target and the offline data's fallback for tied groups


@dataclass
class Task:
    name: str
    train: list[Example]
    test: list[Example]
    rewards: dict[str, Callable]  # every reward the task offers, TRL signature f(completions, **fields)
    reward_weights: dict[str, float]  # from the task's YAML: which rewards count, and how much
    # lm-eval: a YAML in bench/tasks/lm_eval/ by name, or None for the generic task that asks the
    # held-out prompts and scores each reply with `item_metrics` (the task's own rewards).
    eval_yaml: str | None = None
    eval_metric: str = "score"  # the lm-eval result reported as eval/accuracy
    extra: dict = field(default_factory=dict)  # task-specific settings the eval YAML needs
    # Held out like `test` and disjoint from both: what tuning scores on, so that no choice ever looks
    # at the test split (eval.split=validation).
    validation: list[Example] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reward_weights) - set(self.rewards))
        if unknown:
            raise BenchError(
                f"task={self.name}: task.reward_weights names {unknown}, which the task does not offer; "
                f"its rewards are {sorted(self.rewards)}."
            )

    @staticmethod
    def messages(example: Example) -> list[dict]:
        return [{"role": "user", "content": example.prompt}]

    @property
    def reward_funcs(self) -> list[Callable]:
        return [self.rewards[name] for name in self.reward_weights]

    def score(self, completions: list, rows: list[dict]) -> list[float]:
        """The scalar reward, Σ weight · reward: the one number every method optimises."""
        columns = {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}
        total = [0.0] * len(completions)
        for name, weight in self.reward_weights.items():
            for i, value in enumerate(self.rewards[name](completions, **columns)):
                total[i] += weight * value
        return total

    def item_metrics(self, reply: str, fields: dict) -> dict[str, float]:
        """Per-item scores of one held-out reply, for the generic lm-eval task: each reward, and `score`."""
        columns = {key: [value] for key, value in fields.items()}
        out = {name: float(reward([reply], **columns)[0]) for name, reward in self.rewards.items()}
        out["score"] = float(self.score([reply], [fields])[0])
        return out

    def extra_eval(
        self, generate: Callable[[list[list[dict]]], list[str]], limit: int | None, split: str = "test"
    ) -> dict:
        """Evaluation beyond lm-eval (e.g. whole games) on a held-out split, given chats → replies."""
        return {}

    def split(self, name: str) -> list[Example]:
        """A held-out split by name: `test` (reported) or `validation` (selection)."""
        if name not in SPLITS:
            raise BenchError(f"eval.split={name!r}: a held-out split is one of {', '.join(SPLITS)}.")
        rows = self.test if name == "test" else self.validation
        if not rows:
            raise BenchError(f"task {self.name!r} has no {name} split (task.num_{name} = 0?).")
        return rows

    def prompts(self, n: int) -> list[Example]:
        if n > len(self.train):
            raise BenchError(
                f"train.num_prompts={n} but task {self.name!r} has only {len(self.train)} training examples."
            )
        return self.train[:n]


@dataclass(frozen=True)
class TaskEntry:
    name: str
    build: Callable  # (cfg: DictConfig) -> Task


TASKS: Registry[TaskEntry] = Registry("task", "bench.tasks")


def register_task(name: str):
    """`@register_task("name")` on `build(cfg) -> Task`, where cfg is the task's YAML (conf/task/)."""
    return TASKS.decorator(name, lambda build: TaskEntry(name, build))


def fingerprint(rows) -> str:
    """Content hash of JSON-serialisable rows: equal fingerprints mean identical data."""
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
