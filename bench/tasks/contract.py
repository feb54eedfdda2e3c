"""The task contract checked on real fields, in seconds, before any model loads: each reward function is
called on the task's first training row as TRL calls it and as the harness calls it, and so are the task's
other callables (its chat messages, per-item metrics and weighted score). A reward written per item, or
one that names a field the rows lack, fails here with the signature it needs, instead of as a TypeError
once training has started (docs/adding-a-task.md)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path

from bench import BenchError
from bench.tasks.base import Example, Task

DOCS = "docs/adding-a-task.md"
# What TRL passes every reward function besides the dataset's columns, all as keywords: GRPOTrainer's and
# RLOOTrainer's `_calculate_rewards` (TRL 1.12 and 1.16) pass all six; OnlineDPOTrainer the first four.
TRL_KEYWORDS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")
# Column names a row holds beside its fields: a field so named would replace the prompt, or be dropped
# by TRL (prompt, completion, completion_ids) or clash with one of its keywords.
RESERVED = frozenset({"prompt", "completion", *TRL_KEYWORDS})
# Made-up replies to score beside the gold one: a number, and none. What they score does not matter.
MADE_UP = ("I think the answer is 42.", "")
_REPO = Path(__file__).resolve().parents[2]


def check(task: Task) -> None:
    """Raise a BenchError naming the fix for the first part of `task` that breaks its contract."""
    if not task.train:
        raise BenchError(f"task={task.name} has no training rows: its builder returned an empty `train`.")
    example = task.train[0]
    _example(task, example)
    texts = [example.gold or MADE_UP[0], *MADE_UP]
    for name, reward in task.rewards.items():  # every reward: item_metrics scores held-out replies with all
        _reward(task, name, reward, example, texts)
    _scores(task, example, texts)


def _example(task: Task, example: Example) -> None:
    """The first training row: a prompt, fields by name, a gold completion, the chat built from them."""
    problem = _row_problem(example)
    if problem is None:
        messages = _call(task, "Task.messages", example, task.messages, example)
        chat = (
            isinstance(messages, list)
            and messages
            and all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str) for m in messages)
        )
        if not chat:
            problem = f"Task.messages returned {_short(messages)}, not a list of {{'role', 'content'}} chat messages"
    if problem is not None:
        raise BenchError(f"task={task.name}: the first training row is not a valid Example: {problem} (see {DOCS}).")


def _row_problem(example: Example) -> str | None:
    if not isinstance(example.prompt, str) or not example.prompt:
        return "its prompt is not a non-empty string"
    if not isinstance(example.fields, dict) or not all(isinstance(k, str) for k in example.fields):
        return "its fields are not a dict of named values"
    if not isinstance(example.gold, str):
        return f"its gold completion is {type(example.gold).__name__}, not a string"
    clash = sorted(RESERVED & set(example.fields))
    if clash:
        return (
            f"its fields {clash} clash with the columns and keywords every reward receives "
            f"({', '.join(sorted(RESERVED))}); rename them"
        )
    return None


def _reward(task: Task, name: str, reward: Callable, example: Example, texts: list[str]) -> None:
    """`reward` called twice on the row: with TRL's keywords and chat completions, as GRPO, RLOO and
    Online DPO call it, and as the harness's `Task.score` calls it (the offline data, PPO's rule reward
    model, evaluation): `reward(completions, **fields)` with plain strings."""
    from transformers import TrainerState  # deferred: the task package stays light to import

    n = len(texts)
    columns = {key: [value] * n for key, value in example.fields.items()}
    trl = {
        "prompts": [task.messages(example)] * n,
        "completions": [[{"role": "assistant", "content": t}] for t in texts],
        "completion_ids": [list(range(len(t.split()) + 1)) for t in texts],  # made up: no tokenizer here
        "trainer_state": TrainerState(),
        "log_extra": lambda column, values: None,  # TRL's: a column for its completions table
        "log_metric": lambda metric, value: None,  # TRL's: a scalar it logs
    }
    for how, args, kwargs in (
        ("as TRL calls it", (), {**trl, **columns}),
        ("as the harness scores a string", (texts,), columns),
    ):
        if not _binds(reward, args, kwargs):
            try:  # the arguments do not bind, so the body cannot run: this gives Python's own words for it
                reward(*args, **kwargs)
            except TypeError as err:
                raise BenchError(_signature_error(task, name, reward, example, f"{how}: {err}")) from None
        out = _call(task, f"reward {name!r} ({_where(reward)}), called {how},", example, reward, *args, **kwargs)
        if not _numbers(out, n):
            raise BenchError(
                f"task={task.name}: reward {name!r} ({_where(reward)}), called {how} with {n} completions, "
                f"returned {_short(out)}; a reward returns a list of one number per completion, here {n} "
                f"(see {DOCS})."
            )


def _scores(task: Task, example: Example, texts: list[str]) -> None:
    """The weighted score every method optimises, and the per-item metrics evaluation reads."""
    out = _call(task, "Task.score", example, task.score, texts, [example.fields] * len(texts))
    if not _numbers(out, len(texts)):
        raise BenchError(f"task={task.name}: Task.score returned {_short(out)}, not one number per completion.")
    metrics = _call(task, "Task.item_metrics", example, task.item_metrics, texts[0], example.fields)
    if not isinstance(metrics, dict) or not _numbers(list(metrics.values()), len(metrics)):
        raise BenchError(f"task={task.name}: Task.item_metrics returned {_short(metrics)}, not {{name: number}}.")
    if task.eval_yaml is None and task.eval_metric not in metrics:
        raise BenchError(
            f"task={task.name}: eval_metric={task.eval_metric!r} is none of the per-item metrics the generic "
            f"lm-eval task reports ({', '.join(sorted(metrics))}); name one of them (see {DOCS})."
        )


def _binds(fn: Callable, args: tuple, kwargs: dict) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): the call itself says what is wrong
        pass
    return True


def _signature_error(task: Task, name: str, reward: Callable, example: Example, problem: str) -> str:
    fields = sorted(example.fields)
    try:
        params = list(inspect.signature(reward).parameters.values())
    except ValueError:
        params = []
    wanted = [p.name for p in params if p.name in example.fields]
    strays = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in example.fields
        and p.name not in TRL_KEYWORDS
        and p.name != "completion"
    ]
    func = getattr(reward, "__name__", name)
    signature = f"def {func}({', '.join(['completions', *wanted, '**kwargs'])}) -> list[float]"
    stray = "".join(
        f" `{p}` is no field of this task's rows" + (f" (did you mean `{close[0]}`?)." if close else ".")
        for p in strays
        for close in [difflib.get_close_matches(p, fields, n=1)]
    )
    return (
        f"task={task.name}: reward {name!r} ({_where(reward)}) cannot be called {problem}.{stray} A reward "
        f"function must be `{signature}`: it is called once per batch, with `completions` and each of the "
        f"task's fields as lists (one item per completion; this task's rows have: {', '.join(fields) or 'none'}), "
        f"and returns one number per completion. `**kwargs` is required: TRL also passes "
        f"{', '.join(k for k in TRL_KEYWORDS if k != 'completions')}. See {DOCS}."
    )


def _call(task: Task, what: str, example: Example, fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # a user's code: whatever it raises is reported with where it came from
        raise BenchError(
            f"task={task.name}: {what} raised {type(err).__name__}: {err}, on the first training row (fields "
            f"{_short(example.fields)}) with a made-up completion. It must score any reply a model may give, "
            "the empty one included; TRL passes chat completions ([{'role': 'assistant', 'content': ...}]) "
            f"and the harness strings, and bench.tasks.rewards.completion_text reads both (see {DOCS})."
        ) from err


def _numbers(values, n: int) -> bool:
    """One number per completion: a list (or tuple, array, 1-d tensor) of `n` values that float() takes."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__") or len(values) != n:
        return False
    try:
        return all(v is not None and not isinstance(v, str) and isinstance(float(v), float) for v in values)
    except (TypeError, ValueError):
        return False


def _where(fn: Callable) -> str:
    """`name in file:line`, the file relative to the repository when it is in it."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        path, line = Path(inspect.getsourcefile(fn)), inspect.getsourcelines(fn)[1]  # type: ignore[arg-type]  # None: TypeError
    except (TypeError, OSError):
        return name
    shown = path.relative_to(_REPO) if path.is_relative_to(_REPO) else path
    return f"{name} in {shown}:{line}"


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
