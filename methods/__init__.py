"""Method adapters: one file per trainer, registered by decorator, found by importing this package.

A method is a `conf/method/<name>.yaml`. One that trains with a new TRL trainer is that YAML plus one
file here (an `@register(...)`-decorated builder). A variant of an existing one (DAPO of GRPO, IPO of
DPO: the same trainer, another objective) is the YAML alone: it names the adapter it reuses with
`adapter:` and sets its own `args`.

Importing this package never imports a trainer: an adapter names its TRL config class as
"module:Class" and imports its trainer inside `build`. So every method stays registered whatever TRL is
installed, and one that the installed TRL lacks (PPO after 1.12) fails at validation with the version it
needs, instead of breaking every other method's import.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import TYPE_CHECKING

from bench.system.registry import Registry
from methods.base import DATA_KINDS, MemoryFacts, RunContext

if TYPE_CHECKING:
    from torch import nn
    from transformers import Trainer

__all__ = [
    "Method",
    "MemoryFacts",
    "RunContext",
    "register",
    "get",
    "names",
    "adapter_name",
    "why_unavailable",
    "load_class",
]


@dataclass(frozen=True)
class Method:
    name: str
    config: str  # "module:Class" of the TRL config dataclass that `method.args` are passed into
    data: str  # which dataset the harness prepares: one of DATA_KINDS
    build: Callable[[RunContext], Trainer]  # RunContext -> a TRL trainer, ready to .train()
    policy: Callable[[Trainer], nn.Module]  # trainer -> the policy it trains (saved, counted)
    # Checks of the TRL config that the trainer (not the config class) makes, run at validation so
    # they fail before any model loads: raise ValueError with the trainer's own message.
    check: Callable[[object], None] | None = None
    # The TRL config fields through which this trainer samples, keyed by the shared `sampling:` setting
    # they take (temperature, top_p, max_new_tokens). The harness fills them from `sampling:` unless
    # the method's YAML sets them itself. Empty: the method does not sample while training.
    sampling: dict[str, str] = field(default_factory=dict)
    # Where the installed TRL may lack the trainer: the TRL it needs and the lock that has it (docs/getting-started.md).
    needs: str = ""
    # The config field that takes the task's reward weights (GRPO's and RLOO's `reward_weights`): the
    # harness fills it before validation, so the config that trains is the one that was validated.
    weights_field: str | None = None
    # Configs of trainers the adapter runs before its own (PPO's reward model): (policy's validated
    # config, the method's YAML) -> {name: ("module:Class", kwargs)}; validated with the policy's and
    # handed to the adapter built, as ctx.configs[name].
    side_configs: Callable[[object, dict], dict[str, tuple[str, dict]]] | None = None
    # What its trainer holds in memory beyond the data kind's shapes (reference, value model, logits
    # copies): the estimate's facts. None: undeclared, and the estimate says it assumed none.
    memory: MemoryFacts | None = None

    @property
    def config_class(self) -> type:
        return load_class(self.config)

    def unavailable(self) -> str | None:
        """Why the installed TRL cannot run this method, in one paragraph; None when it can."""
        module, name = self.config.split(":")
        try:  # the module, then the class in it (imported here, at validation, never with the package)
            found = importlib.util.find_spec(module) is not None and hasattr(importlib.import_module(module), name)
        except ImportError:  # a parent package is gone too, or the module no longer imports
            found = False
        if found:
            return None
        return (
            f"method={self.name} needs {module}.{name}, which the installed TRL {version('trl')} lacks. "
            f"It needs {self.needs or 'another TRL'}: the default lock has it (`make setup`, constraints.txt); "
            "the current lock (`make setup LOCK=current`) runs every other method."
        )


def load_class(spec: str) -> type:
    """The class a "module:Class" string names (a TRL config)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


REGISTRY: Registry[Method] = Registry("method adapter", __name__, skip=("base",))


def _trainer_model(trainer: Trainer) -> nn.Module:
    assert trainer.model is not None  # a built trainer holds its model (Trainer types it Optional)
    return trainer.model


def register(
    name: str,
    *,
    config: str,
    data: str,
    policy: Callable[[Trainer], nn.Module] = _trainer_model,
    check: Callable[[object], None] | None = None,
    sampling: dict[str, str] | None = None,
    needs: str = "",
    weights_field: str | None = None,
    side_configs: Callable[[object, dict], dict[str, tuple[str, dict]]] | None = None,
    memory: MemoryFacts | None = None,
):
    """Register `build(ctx) -> trainer` as method `name`, trained with TRL config class `config`
    ("module:Class", imported at validation); `build` imports its trainer itself.

    `policy(trainer)` returns the model being trained; most TRL trainers keep it as `.model`.
    `check(args)` repeats what the trainer would reject later, so it fails at validation.
    `sampling` maps the shared sampling settings onto the config's own field names (see Method).
    `needs` names the TRL that has the trainer, where some supported TRL lacks it ("TRL 1.12").
    `weights_field`, `side_configs` and `memory` (MemoryFacts, what bench.estimate counts): see Method.
    """
    if data not in DATA_KINDS:
        raise ValueError(f"method {name!r}: data={data!r} is not one of {DATA_KINDS}")
    return REGISTRY.decorator(
        name,
        lambda build: Method(
            name, config, data, build, policy, check, dict(sampling or {}), needs, weights_field, side_configs, memory
        ),
    )


def names() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> Method:
    return REGISTRY.get(name)


def adapter_name(method_cfg) -> str:
    """The adapter a `conf/method/*.yaml` trains with: its `adapter:` for a variant, else its own name."""
    return str(method_cfg.get("adapter") or method_cfg.name)


def why_unavailable(method_cfg) -> str | None:
    """Why the installed TRL cannot run a `conf/method` entry (a composed `cfg.method`, or its YAML as
    loaded): its adapter's reason. None where it can, or where no adapter has that name (validation
    says so)."""
    try:
        return get(adapter_name(method_cfg)).unavailable()
    except KeyError:
        return None
