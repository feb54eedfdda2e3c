"""Generated arithmetic word-free problems: seeded, offline, with a disjoint held-out split."""

from __future__ import annotations

import random

from omegaconf import DictConfig

from bench import BenchError
from bench.tasks.base import Example, Task, register_task
from bench.tasks.rewards import NUMERIC_REWARDS

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@register_task("arithmetic")
def build(cfg: DictConfig) -> Task:
    bad_ops = set(cfg.ops) - set(_OPS)
    if bad_ops or cfg.operands < 2 or cfg.min_value > cfg.max_value:
        raise BenchError(
            f"task=arithmetic needs ops within {sorted(_OPS)}, operands >= 2 and min_value <= max_value; "
            f"got ops={list(cfg.ops)}, operands={cfg.operands}, range=[{cfg.min_value}, {cfg.max_value}]."
        )
    # The data seed is the task's, not the run's: every run and every seed sees the same prompts.
    rng = random.Random(cfg.seed)
    seen: set[str] = set()
    examples: list[Example] = []
    # Drawn in this order: train, test, then validation, so adding the validation split left the train
    # and test problems exactly as they were.
    needed = cfg.num_train + cfg.num_test + cfg.num_validation
    space = (cfg.max_value - cfg.min_value + 1) ** cfg.operands * len(cfg.ops) ** (cfg.operands - 1)
    if needed > space // 2:
        raise BenchError(f"task=arithmetic: {needed} distinct problems requested but the range allows {space}.")
    while len(examples) < needed:
        values = [rng.randint(cfg.min_value, cfg.max_value) for _ in range(cfg.operands)]
        ops = [rng.choice(list(cfg.ops)) for _ in range(cfg.operands - 1)]
        expr = " ".join(f"{v} {o}" for v, o in zip(values[:-1], ops, strict=True)) + f" {values[-1]}"
        if expr in seen:  # no two splits share a problem
            continue
        seen.add(expr)
        result = values[0]
        for op, value in zip(ops, values[1:], strict=True):
            result = _OPS[op](result, value)
        examples.append(
            Example(
                prompt=cfg.template.format(expr=expr),
                fields={"answer": str(result)},
                gold=f"The answer is {result}",
            )
        )
    return Task(
        name="arithmetic",
        train=examples[: cfg.num_train],
        test=examples[cfg.num_train : cfg.num_train + cfg.num_test],
        validation=examples[cfg.num_train + cfg.num_test :],
        rewards=NUMERIC_REWARDS,
        reward_weights=dict(cfg.reward_weights),
        eval_yaml=cfg.eval_task,
        eval_metric=cfg.eval_metric,
    )
