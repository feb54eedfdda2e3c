"""GSM8K: the hub's openai/gsm8k by default, or local train.jsonl/test.jsonl with task.data_dir."""

from __future__ import annotations

import random
import re
from pathlib import Path

from omegaconf import DictConfig

from bench import BenchError
from bench.system import files
from bench.tasks.base import Example, Task, register_task
from bench.tasks.rewards import NUMERIC_REWARDS, normalize_number


@register_task("gsm8k")
def build(cfg: DictConfig) -> Task:
    sources: dict[str, Path | str]
    if cfg.data_dir:
        paths = {split: Path(cfg.data_dir).expanduser() / f"{split}.jsonl" for split in ("train", "test")}
        splits = {split: _read_jsonl(path) for split, path in paths.items()}
        sources = dict(paths)
    else:
        sources = {split: f"{cfg.hub_id}[{split}]" for split in ("train", "test")}
        splits = _from_hub(cfg.hub_id, cfg.hub_config)
    # Every row is parsed before the slice, so a broken row is named by its file and line whatever
    # the slice's size.
    parsed = {
        split: [(_example(row, cfg.template, where), row) for row, where in rows] for split, rows in splits.items()
    }
    train, validation = validation_slice(parsed["train"], int(cfg.seed), int(cfg.num_validation), sources["train"])
    return Task(
        name="gsm8k",
        train=[example for example, _ in train],
        test=[example for example, _ in parsed["test"]],
        validation=[example for example, _ in validation],
        rewards=NUMERIC_REWARDS,
        reward_weights=dict(cfg.reward_weights),
        eval_yaml=cfg.eval_task,
        eval_metric=cfg.eval_metric,
        extra={
            "data_dir": str(Path(cfg.data_dir).expanduser().resolve()) if cfg.data_dir else None,
            # lm-eval's gsm8k reads the original rows: the validation slice is written out for it.
            "eval_rows": {"validation": [row for _, row in validation]},
        },
    )


def validation_slice(rows: list, seed: int, n: int, source: Path | str) -> tuple[list, list]:
    """(train, validation): a fixed, seeded choice of `n` rows of the train file (`source`, named in the
    error) for validation, which training never uses; the rest keeps its file order. GSM8K has no
    validation split of its own."""
    if n >= len(rows):
        raise BenchError(
            f"{source} has {len(rows)} rows, and task.num_validation={n} holds that many out for validation, "
            f"which leaves no GSM8K training rows: give the file more rows, or set task.num_validation below "
            f"{len(rows)}."
        )
    held = set(random.Random(seed).sample(range(len(rows)), n))
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def _read_jsonl(path: Path) -> list[tuple[dict, str]]:
    if not path.is_file():
        raise BenchError(
            f"task.data_dir: {path} is missing. GSM8K offline needs train.jsonl and test.jsonl with "
            "'question' and 'answer' fields (the hub's openai/gsm8k format)."
        )
    rows = list(files.iter_jsonl(path))
    if not rows:
        raise BenchError(
            f"{path} is empty: it holds no rows. GSM8K offline needs train.jsonl and test.jsonl with one JSON "
            "object a line, with 'question' and 'answer' fields (the hub's openai/gsm8k format)."
        )
    return rows


def _from_hub(hub_id: str, hub_config: str) -> dict[str, list[tuple[dict, str]]]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(hub_id, hub_config)
    except Exception as err:  # datasets raises several types for "offline" and "not found"
        raise BenchError(
            f"Could not load {hub_id!r} ({hub_config}) from the Hugging Face Hub: {err}. Without network, "
            "pass task.data_dir=DIR holding train.jsonl and test.jsonl (export HF_HUB_OFFLINE=0 to use the hub)."
        ) from err
    return {
        split: [(row, f"{hub_id}[{split}][{i}]") for i, row in enumerate(dataset[split])] for split in ("train", "test")
    }


def _example(row: dict, template: str, where: str) -> Example:
    if not isinstance(row, dict):
        raise BenchError(
            f"{where}: a GSM8K row is a JSON object with 'question' and 'answer'; got {type(row).__name__}."
        )
    missing = [key for key in ("question", "answer") if key not in row]
    if missing:
        raise BenchError(
            f"{where}: the row has no {' and no '.join(repr(k) for k in missing)} field; a GSM8K row needs "
            f"'question' and 'answer' (ending in '#### <number>'); it has {sorted(row)}."
        )
    question, answer = row["question"], row["answer"]
    if not isinstance(question, str) or not isinstance(answer, str) or "####" not in answer:
        raise BenchError(
            f"{where}: a GSM8K row needs a 'question' string and an 'answer' string ending in "
            f"'#### <number>'; got keys {sorted(row)}."
        )
    solution, final = answer.rsplit("####", 1)
    gold = normalize_number(final.strip())
    if gold is None:
        raise BenchError(f"{where}: the final answer {final.strip()!r} after '####' is not a number.")
    # The gold solution without the calculator annotations <<...>>, ending with the answer as a number.
    text = re.sub(r"<<[^>]*>>", "", solution).strip()
    return Example(
        prompt=template.format(question=question), fields={"answer": gold}, gold=f"{text}\nThe answer is {gold}"
    )
