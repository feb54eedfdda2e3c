"""Reverse a word: a task whose answer is text, not a number (the worked example of docs/adding-a-task.md)."""

from __future__ import annotations

import random
import re

from omegaconf import DictConfig

from bench.tasks import Example, Task, register_task
from bench.tasks.rewards import completion_text


def reply_word(completion) -> str:
    """The last run of letters in the reply, lower-cased: the model's answer."""
    words = re.findall(r"[a-z]+", completion_text(completion).lower())
    return words[-1] if words else ""


def reversed_exactly(completions, word, **kwargs) -> list[float]:
    """1.0 when the reply ends with the word reversed. `word` is the examples' field of that name."""
    return [float(reply_word(c) == w[::-1]) for c, w in zip(completions, word, strict=True)]


def letters_in_place(completions, word, **kwargs) -> list[float]:
    """Partial credit: the share of the reversed word's letters the reply has in the right place."""
    scores = []
    for completion, w in zip(completions, word, strict=True):
        guess, target = reply_word(completion), w[::-1]
        scores.append(sum(a == b for a, b in zip(guess, target, strict=False)) / max(len(target), len(guess)))
    return scores


def draw_words(rng: random.Random, n: int, cfg: DictConfig, taken: frozenset = frozenset()) -> list[str]:
    """`n` distinct made-up words, none of them in `taken`, in a seeded order."""
    words: set[str] = set()
    while len(words) < n:
        length = rng.randint(cfg.min_length, cfg.max_length)
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
        if word not in taken:
            words.add(word)
    ordered = sorted(words)  # sets have no stable order across processes; sort, then shuffle seeded
    rng.shuffle(ordered)
    return ordered


@register_task("reverse")
def build(cfg: DictConfig) -> Task:
    rng = random.Random(cfg.seed)  # the task's own seed: every run sees the same words
    ordered = draw_words(rng, cfg.num_train + cfg.num_test, cfg)
    # Validation is drawn after train and test, so they stay as they were, and apart from both.
    ordered += draw_words(rng, cfg.num_validation, cfg, taken=frozenset(ordered))
    examples = [Example(prompt=cfg.template.format(word=w), fields={"word": w}, gold=w[::-1]) for w in ordered]
    return Task(
        name="reverse",
        train=examples[: cfg.num_train],
        test=examples[cfg.num_train : cfg.num_train + cfg.num_test],
        validation=examples[cfg.num_train + cfg.num_test :],
        rewards={"reversed": reversed_exactly, "letters": letters_in_place},
        reward_weights=dict(cfg.reward_weights),
        eval_metric="reversed",  # per-item `reversed` from the generic lm-eval task, as eval/accuracy
    )
