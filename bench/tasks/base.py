"""The task interface: examples, prompt formatting and the weighted reward."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from bench import BenchError
from bench.tasks.rewards import REWARDS


@dataclass(frozen=True)
class Example:
    question: str  # the user turn, instruction included
    answer: str  # gold final answer, a normalised number
    solution: str = ""  # gold worked solution where the dataset has one (gsm8k); used as a DPO fallback


@dataclass
class Task:
    name: str
    train: list[Example]
    test: list[Example]
    reward_weights: dict[str, float]
    eval_task: str  # the lm-eval task (bench/lm_eval_tasks/<eval_task>.yaml)
    extra: dict = field(default_factory=dict)  # task-specific settings the eval YAML needs

    def __post_init__(self) -> None:
        unknown = set(self.reward_weights) - set(REWARDS)
        if unknown:
            raise BenchError(
                f"task.reward_weights has unknown rewards {sorted(unknown)}; known: {sorted(REWARDS)}."
            )

    @staticmethod
    def messages(example: Example) -> list[dict]:
        return [{"role": "user", "content": example.question}]

    @property
    def reward_funcs(self) -> list:
        return [REWARDS[name] for name in self.reward_weights]

    def score(self, completions: list, answers: list[str]) -> list[float]:
        """The scalar reward: Σ weight · reward, the same number every method optimises."""
        total = [0.0] * len(completions)
        for name, weight in self.reward_weights.items():
            for i, value in enumerate(REWARDS[name](completions, answer=answers)):
                total[i] += weight * value
        return total

    def gold_completion(self, example: Example) -> str:
        return example.solution or f"The answer is {example.answer}"

    def prompts(self, n: int) -> list[Example]:
        if n > len(self.train):
            raise BenchError(
                f"train.num_prompts={n} but task {self.name!r} has only {len(self.train)} training examples."
            )
        return self.train[:n]


def fingerprint(rows) -> str:
    """Content hash of JSON-serialisable rows: equal fingerprints mean identical data."""
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
