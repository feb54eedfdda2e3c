"""Method adapters: one file per method, registered by decorator, found by importing this package.

Adding a method is one file here (an `@register(...)`-decorated builder) plus `conf/method/<name>.yaml`.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from methods.base import DATA_KINDS, RunContext

__all__ = ["Method", "RunContext", "register", "get", "names"]


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type  # the TRL config dataclass that `method.args` are passed into
    data: str  # which dataset the harness prepares: one of DATA_KINDS
    build: Callable[[RunContext], object]  # RunContext -> a TRL trainer, ready to .train()
    policy: Callable[[object], object]  # trainer -> the PEFT-wrapped policy it trains (saved, counted)


_REGISTRY: dict[str, Method] = {}


def _trainer_model(trainer):
    return trainer.model


def register(name: str, *, config: type, data: str, policy: Callable[[object], object] = _trainer_model):
    """Register `build(ctx) -> trainer` as method `name`, trained with TRL config class `config`.

    `policy(trainer)` returns the PeftModel being trained; most TRL trainers keep it as `.model`.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"method {name!r}: data={data!r} is not one of {DATA_KINDS}")

    def decorator(build: Callable[[RunContext], object]):
        if name in _REGISTRY:
            raise ValueError(
                f"method {name!r} is registered twice ({_REGISTRY[name].build.__module__}, {build.__module__})"
            )
        _REGISTRY[name] = Method(name=name, config_class=config, data=data, build=build, policy=policy)
        return build

    return decorator


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> Method:
    _discover()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"No method adapter {name!r} in methods/; registered: {', '.join(sorted(_REGISTRY))}.{hint}"
        )
    return _REGISTRY[name]
