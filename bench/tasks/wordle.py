"""Wordle: guess the next word of a game in progress; scored per turn by lm-eval and by whole games.

The game itself (word lists, feedback, rewards, the game loop) lives in `wordle_game`; this file turns
seeded game states into examples and plugs the game into the task contract.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from omegaconf import DictConfig

from bench.tasks import Example, Task, register_task
from bench.tasks import wordle_game as wg

log = logging.getLogger(__name__)

# Candidates scored for the gold guess, most frequent first: a few dozen find a near-best split, and the
# whole set (up to 2,500 words, each scored against all the others) would cost seconds per build.
_GOLD_SCAN = 64


def _facts(history: list[list[str]]) -> str:
    """The board in a few words: greens in place, letters known to be in the word, letters ruled out."""
    greens, present, absent = ["_"] * wg.WORD_LENGTH, set(), set()
    for guess, marks in history:
        for i, (c, m) in enumerate(zip(guess, marks, strict=True)):
            if m == wg.GREEN:
                greens[i] = c
            if m != wg.ABSENT:
                present.add(c)
            else:
                absent.add(c)
    absent -= present  # a '-' on a repeated letter only caps its count
    parts = [f"Pattern {''.join(greens)}."]
    if present - set(greens):
        parts.append(f"Also in it: {' '.join(sorted(present - set(greens)))}.")
    if absent:
        parts.append(f"Out: {' '.join(sorted(absent))}.")
    return " ".join(parts)


@functools.lru_cache(maxsize=4096)
def _best_guess(board: str) -> tuple[str, int]:
    """(the fitting word that splits the candidates best, how many candidates) for a JSON board; cached
    because positions repeat (every opening is the same board)."""
    history = json.loads(board)
    left = wg.candidates(history)
    return max(left[:_GOLD_SCAN], key=lambda x: wg.info_gain(x, history)), len(left)


def gold_reply(history: list[list[str]], secret: str) -> str:
    """A well-formed reply with a strong guess: the secret when at most two words fit (either is then an
    optimal play), otherwise the fitting word that splits the remaining candidates best."""
    word, left = _best_guess(json.dumps(history))
    if not history:
        think = f"No marks yet: {word} tests common letters."
    elif left <= 2:
        word = secret.upper()
        think = f"{_facts(history)} Only {left} words fit; {word} is one of them."
    else:
        think = f"{_facts(history)} {left} words fit; {word} fits and splits them best."
    return f"<think>{think}</think>\n<guess>{word}</guess>"


def _example(state: dict) -> Example:
    history = state["history"]
    return Example(
        prompt=wg.prompt_text(history),
        # JSON, not a list: an all-empty list column (a batch of opening positions) has no Arrow type.
        fields={"secret": state["secret"], "history": json.dumps(history)},
        gold=gold_reply(history, state["secret"]),
    )


@dataclass
class WordleTask(Task):
    """Single-turn metrics per held-out position, and whole games against held-out secrets."""

    # The full games' secrets per held-out split: the secrets of its positions.
    game_secrets: dict[str, list[str]] = field(default_factory=dict)
    num_eval_games: int = 50  # games per model when the eval config sets no `games`

    def item_metrics(self, reply: str, fields: dict) -> dict[str, float]:
        out = wg.turn_metrics(reply, fields["secret"], fields["history"])
        out["score"] = float(self.score([reply], [fields])[0])
        return out

    def extra_eval(
        self, generate: Callable[[list[list[dict]]], list[str]], limit: int | None, split: str = "test"
    ) -> dict:
        n = self.num_eval_games if limit is None else int(limit)
        secrets = self.game_secrets.get(split, [])
        if n > len(secrets):
            log.warning("wordle: %d games asked, %d %s secrets: playing those", n, len(secrets), split)
        result = wg.play_games(
            lambda prompts: generate([[{"role": "user", "content": p}] for p in prompts]),
            secrets[:n],
        )
        return {
            "game_win_rate": result["win_rate"],
            # Over all games, a loss counting as max turns + 1: defined when nothing is won, and a model
            # cannot look better by winning fewer, easier games.
            "game_mean_guesses": result["mean_guesses_all"],
            "game_mean_guesses_won": result["mean_guesses"],  # the usual Wordle statistic; None: no win
            "game_invalid_rate": result["invalid_guess_rate"],
            "games": result["games"],
        }


@register_task("wordle")
def build(cfg: DictConfig) -> WordleTask:
    train_secrets, test_secrets, validation_secrets = wg.split_secrets(
        cfg.seed, cfg.num_train, cfg.num_test, cfg.num_validation
    )
    rng = random.Random(cfg.seed + 1)  # the boards' own stream: the secrets' draw stays as it was
    # In this order, so train's and test's boards are what they were before validation existed.
    train = [_example(s) for s in wg.make_game_states(train_secrets, rng, cfg.max_history)]
    test = [_example(s) for s in wg.make_game_states(test_secrets, rng, cfg.max_history)]
    validation = [_example(s) for s in wg.make_game_states(validation_secrets, rng, cfg.max_history)]
    return WordleTask(
        name="wordle",
        train=train,
        test=test,
        rewards=dict(wg.REWARDS),
        reward_weights=dict(cfg.reward_weights),
        eval_metric=cfg.eval_metric,
        validation=validation,
        game_secrets={"test": test_secrets, "validation": validation_secrets},
        num_eval_games=int(cfg.num_eval_games),
    )
