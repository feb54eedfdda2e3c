"""Rewards for tasks whose answer is a number (arithmetic, gsm8k).

Each reward has TRL's reward-function signature, `f(completions, answer, **kwargs) -> list[float]`,
where a completion is a string or a chat message list and `answer` is the examples' gold field.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ENDS_WITH_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?\s*\.?\s*$")


def completion_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion if message.get("role", "assistant") == "assistant")


def normalize_number(text: str) -> str | None:
    text = text.replace(",", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else str(value)


def last_number(text: str) -> str | None:
    """The answer a completion gives: its last number, normalised ("1,000." -> "1000")."""
    numbers = _NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def correctness(completions, answer, **kwargs) -> list[float]:
    """1.0 when the completion's last number equals the gold answer, else 0.0."""
    return [
        float(last_number(completion_text(c)) == normalize_number(str(a)))
        for c, a in zip(completions, answer, strict=True)
    ]


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the completion ends with its final answer as a number (what the prompt asks for)."""
    return [float(bool(_ENDS_WITH_NUMBER.search(completion_text(c)))) for c in completions]


NUMERIC_REWARDS: dict[str, Callable] = {"correctness": correctness, "format": format_reward}
