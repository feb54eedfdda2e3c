"""Method adapters: one file per trainer, registered by decorator, found by importing this package.

A method is a `conf/method/<name>.yaml`. One that trains with a new TRL trainer is that YAML plus one
file here (an `@register(...)`-decorated builder). A variant of an existing one (DAPO of GRPO, IPO of
DPO: the same trainer, another objective) is the YAML alone: it names the adapter it reuses with
`adapter:` and sets its own `args`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.registry import Registry
from methods.base import DATA_KINDS, RunContext

__all__ = ["Method", "RunContext", "register", "get", "names", "adapter_name"]


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type  # the TRL config dataclass that `method.args` are passed into
    data: str  # which dataset the harness prepares: one of DATA_KINDS
    build: Callable[[RunContext], object]  # RunContext -> a TRL trainer, ready to .train()
    policy: Callable[[object], object]  # trainer -> the policy it trains (saved, counted)
    # Checks of the TRL config that the trainer (not the config class) makes, run at validation so
    # they fail before any model loads: raise ValueError with the trainer's own message.
    check: Callable[[object], None] | None = None
    # The TRL config fields through which this trainer samples, keyed by the shared `sampling:` setting
    # they take (temperature, top_p, max_new_tokens). The harness fills them from `sampling:` unless
    # the method's YAML sets them itself. Empty: the method does not sample while training.
    sampling: dict[str, str] = field(default_factory=dict)


REGISTRY: Registry[Method] = Registry("method adapter", __name__, skip=("base",))


def _trainer_model(trainer):
    return trainer.model


def register(
    name: str,
    *,
    config: type,
    data: str,
    policy: Callable[[object], object] = _trainer_model,
    check: Callable[[object], None] | None = None,
    sampling: dict[str, str] | None = None,
):
    """Register `build(ctx) -> trainer` as method `name`, trained with TRL config class `config`.

    `policy(trainer)` returns the model being trained; most TRL trainers keep it as `.model`.
    `check(args)` repeats what the trainer would reject later, so it fails at validation.
    `sampling` maps the shared sampling settings onto the config's own field names (see Method).
    """
    if data not in DATA_KINDS:
        raise ValueError(f"method {name!r}: data={data!r} is not one of {DATA_KINDS}")
    return REGISTRY.decorator(name, lambda build: Method(name, config, data, build, policy, check, dict(sampling or {})))


def names() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> Method:
    return REGISTRY.get(name)


def adapter_name(method_cfg) -> str:
    """The adapter a `conf/method/*.yaml` trains with: its `adapter:` for a variant, else its own name."""
    return str(method_cfg.get("adapter") or method_cfg.name)
