"""The settings a run chose on purpose (its method's YAML, its tuned settings, its sweep's axes): the
fairness audit allows rows to differ in these and in nothing else."""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from bench.config import compose
from bench.records.schema import SAMPLING_KEYS

# TRL derives each of these from the other: a row that declares one has chosen both.
DERIVED = {"steps_per_generation": "generation_batch_size", "generation_batch_size": "steps_per_generation"}


# Harness facts compared beside the TRL fields; a row declares one through the keys named here.
FACTS = {
    "fair/dropout": ("train.disable_dropout", "peft.lora_dropout"),
    # The shared prompt budget (every method's prompts cut to it alike; each max_length derived from it).
    "fair/max_prompt_length": ("train.max_prompt_length",),
    **{f"fair/{k}": (f"sampling.{k}",) for k in SAMPLING_KEYS},
}


def declared(
    method_args: dict, tuned: dict, overrides: list[str], sampling_fields: dict[str, str] | None = None
) -> list[str]:
    """The settings a run chose on purpose: TRL field names and `fair/*` facts.

    The method's YAML args (and any `method.args.*` override) declare their fields; tuned settings and
    sweep overrides declare what their dotted keys set (`train.args.learning_rate` → learning_rate,
    `sampling.temperature` → fair/temperature as well as the method's own temperature field).
    """
    names = set(method_args)
    names |= {DERIVED[n] for n in names if n in DERIVED}
    keys = list(tuned) + [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    for key in keys:
        if key.startswith(("train.args.", "method.args.")):
            names.add(key.rsplit(".", 1)[1])
        for fact, sources in FACTS.items():
            if key in sources:
                names.add(fact)
        if key == "train.disable_dropout":
            names.add("disable_dropout")
        if key.startswith("sampling."):
            shared = key.split(".", 1)[1]
            names.add((sampling_fields or {}).get(shared, shared))
    return sorted(names)


def sampling_declared(method_args: dict, sampling_fields: dict[str, str]) -> list[str]:
    """`fair/<key>` for each shared sampling setting the method's YAML overrides through its own field."""
    return [f"fair/{key}" for key, field in sampling_fields.items() if field in method_args]


def of_run(cfg: DictConfig, method) -> list[str]:
    """fair/declared for a run of `method`: its YAML's args, its tuned settings, its sweep's overrides."""
    method_args = cast("dict[str, Any]", OmegaConf.to_container(cfg.method.get("args") or {}, resolve=True))
    tuned = compose.tuned_settings(cfg)
    overrides = list(cfg.get("overrides") or [])
    return sorted(
        set(declared(method_args, dict(tuned), overrides, method.sampling))
        | set(sampling_declared(method_args, method.sampling))
    )
