"""Any procedural dataset of the reasoning-gym library (chain_sum, countdown, word_ladder, ...): its
questions as prompts, its own answer checker as the reward, offline.

    python -m bench task=reasoning_gym task.dataset=countdown 'task.dataset_args={min_numbers:3}'

reasoning-gym is an optional extra (`gym`): its releases pin tabulate==0.9.0, and the lock
(constraints.txt) has 0.10.0, so scripts/setup.sh does not install it.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import logging
import re
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.tasks import Example, Task, register_task
from bench.tasks.rewards import completion_text

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "task=reasoning_gym needs the reasoning-gym library, the optional extra `gym`, which this environment "
    "lacks (scripts/setup.sh installs it; a plain `pip install -e .` does not). Install it with "
    "`.venv/bin/python -m pip install -c constraints.txt -e '.[gym]'` (the lock pins its versions, tabulate "
    "0.9.0 included, which its releases require), then rerun."
)
_ENDS_WITH_ANSWER = re.compile(r"<answer>(?:(?!</?answer>).)*\S(?:(?!</?answer>).)*</answer>\s*$", re.DOTALL)


def _library():
    try:
        import reasoning_gym
        from reasoning_gym.utils import SYSTEM_PROMPTS, extract_answer
    except ImportError as err:
        raise BenchError(INSTALL_HINT) from err
    return reasoning_gym, SYSTEM_PROMPTS, extract_answer


def _create(rg, name: str, args: dict, seed: int, size: int):
    """`reasoning_gym.create_dataset` with the library's complaints turned into one-paragraph errors."""
    from reasoning_gym.factory import DATASETS

    try:
        return rg.create_dataset(name, **args, seed=seed, size=size)
    except TypeError as err:  # an unknown key for the dataset's config dataclass
        fields = sorted(DATASETS[name][1].__dataclass_fields__)
        raise BenchError(
            f"task.dataset_args for reasoning-gym dataset {name!r}: {err}. Its config takes "
            f"{', '.join(f for f in fields if f not in ('seed', 'size'))}."
        ) from err
    except (AssertionError, ValueError) as err:  # the config's own validate()
        raise BenchError(f"task.dataset_args for reasoning-gym dataset {name!r} rejected: {err}") from err


@functools.lru_cache(maxsize=4)
def _entries(
    name: str, args_json: str, seed: int, n_train: int, n_test: int, n_validation: int = 0
) -> list[tuple[Any, dict]]:  # reasoning-gym's datasets: the library has no type annotations
    """(dataset, entry) for the training items, the test items, then the validation items. Cached: some
    generators are slow (countdown solves each puzzle, ~20 ms an item) and a run builds its task for
    training and for eval."""
    rg, args = _library()[0], json.loads(args_json)
    # Item i of a dataset is drawn with Random(seed + i), so train uses seeds [seed, seed + n_train) and
    # the held-out split the next range: disjoint draws. Twice the test size leaves room to drop questions
    # that a small question space repeats from the training split.
    train_ds = _create(rg, name, args, seed, n_train)
    test_ds = _create(rg, name, args, seed + n_train, 2 * n_test)
    train = [(train_ds, train_ds[i]) for i in range(n_train)]
    seen = {entry["question"] for _, entry in train}
    fresh = ((test_ds, e) for e in (test_ds[i] for i in range(2 * n_test)) if e["question"] not in seen)
    test = list(itertools.islice(fresh, n_test))
    # Validation: the next seed range after test's, with questions of either earlier split dropped.
    seen |= {entry["question"] for _, entry in test}
    validation = []
    if n_validation:
        val_ds = _create(rg, name, args, seed + n_train + 2 * n_test, 2 * n_validation)
        fresh = ((val_ds, e) for e in (val_ds[i] for i in range(2 * n_validation)) if e["question"] not in seen)
        validation = list(itertools.islice(fresh, n_validation))
    for split, got, want in (("test", test, n_test), ("validation", validation, n_validation)):
        if len(got) < want:
            raise BenchError(
                f"reasoning-gym dataset {name!r} with these task.dataset_args has too few distinct "
                f"questions: only {len(got)} of task.num_{split}={want} held-out questions differ from the "
                "other splits' ones. Lower task.num_train, task.num_test or task.num_validation, or widen "
                "the dataset's settings."
            )
    return train + test + validation


def answer_format(completions, **kwargs) -> list[float]:
    """1.0 when the reply ends with a non-empty <answer>...</answer>, 0.5 when it has one elsewhere."""
    scores = []
    for completion in completions:
        text = completion_text(completion)
        if _ENDS_WITH_ANSWER.search(text):
            scores.append(1.0)
        else:
            scores.append(0.5 * bool(re.search(r"<answer>\s*\S.*?</answer>", text, re.DOTALL)))
    return scores


@register_task("reasoning_gym")
def build(cfg: DictConfig) -> Task:
    _, prompts, extract_answer = _library()
    from reasoning_gym.factory import DATASETS

    name = str(cfg.dataset)
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise BenchError(
            f"task.dataset={name!r} is not a reasoning-gym dataset.{hint} It has {len(DATASETS)}, e.g. "
            f"{', '.join(sorted(DATASETS)[:12])}, ... (reasoning_gym.factory.DATASETS lists them all)."
        )
    args = (
        cast("dict[str, Any]", OmegaConf.to_container(cfg.dataset_args, resolve=True))
        if cfg.get("dataset_args")
        else {}
    )
    if {"seed", "size"} & set(args):
        raise BenchError("task.dataset_args sets seed or size; use task.seed, task.num_train and task.num_test.")
    style = cfg.get("prompt_style")
    if style is not None and style not in prompts:
        raise BenchError(f"task.prompt_style={style!r}: reasoning-gym's styles are {sorted(prompts)} (or null).")

    n_train, n_test, n_val = int(cfg.num_train), int(cfg.num_test), int(cfg.num_validation)
    entries = _entries(name, json.dumps(args, sort_keys=True), int(cfg.seed), n_train, n_test, n_val)
    if any(entry["answer"] is None for _, entry in entries[:8]):
        log.warning("reasoning-gym %s has no oracle answers: SFT and the gold fallback have no target", name)

    def answer_score(completions, entry_id, **kwargs) -> list[float]:
        """The dataset's own checker on the last <answer>...</answer> of the reply, in [0, 1]."""
        scores = []
        for completion, i in zip(completions, entry_id, strict=True):
            dataset, entry = entries[int(i)]
            try:
                scores.append(float(dataset.score_answer(extract_answer(completion_text(completion)), entry)))
            except Exception:  # some checkers raise on malformed answers (boxnet, prime_factorization)
                scores.append(0.0)
        return scores

    instruction = f"{prompts[style].strip()}\n\n" if style is not None else ""

    def example(i: int, entry: dict) -> Example:
        answer = "" if entry["answer"] is None else str(entry["answer"])
        # The scorer reads the entry itself (metadata with tuples that JSON would turn into lists, which
        # changes some checkers' verdicts), so a row carries its index into `entries`, and the answer
        # so that the prompts' fingerprint (the offline data's cache key) changes with it.
        return Example(
            prompt=instruction + entry["question"],
            fields={"entry_id": i, "answer": answer},
            gold=f"<answer>{answer}</answer>" if entry["answer"] is not None else "",
        )

    examples = [example(i, entry) for i, (_, entry) in enumerate(entries)]
    return Task(
        name=f"reasoning_gym_{name}",  # lm-eval's task name and the cache files', so per dataset
        train=examples[:n_train],
        test=examples[n_train : n_train + n_test],
        validation=examples[n_train + n_test :],
        rewards={"correct": answer_score, "format": answer_format},
        reward_weights=dict(cfg.reward_weights),
        eval_metric=cfg.eval_metric,
    )
