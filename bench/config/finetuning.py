"""The fine-tuning mode: the `peft` config group, instantiated by Hydra straight into peft's own config
class (`_target_: peft.LoraConfig`), or `peft=none` for full fine-tuning.

The harness never copies peft's fields by hand: whatever peft's config class accepts works from the
command line (`peft.target_modules=all-linear`, `+peft.use_dora=true`, regex targets, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from bench import BenchError


def is_full(peft_cfg: DictConfig | None) -> bool:
    """`peft=none` (no `_target_`): every weight of the policy trains."""
    return peft_cfg is None or not peft_cfg.get("_target_")


def peft_config(peft_cfg: DictConfig | None, task_type: str = "CAUSAL_LM"):
    """The run's peft config object (None for full fine-tuning); peft's own checks run here."""
    if peft_cfg is None or is_full(peft_cfg):
        return None
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    target = peft_cfg._target_
    try:
        return instantiate(peft_cfg, task_type=task_type, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__ or err
        hint = ""
        if isinstance(cause, TypeError):
            try:
                known = {f.name for f in dataclasses.fields(get_class(target))}
            except Exception:  # an unimportable target: the cause already says so
                known = set()
            given = set(cast("dict[str, Any]", OmegaConf.to_container(peft_cfg))) - {"_target_"}
            unknown = sorted(given - known)
            hints = [
                f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, known, n=1)) else k for k in unknown
            ]
            hint = f" Unknown field(s): {', '.join(hints)}." if hints else ""
        raise BenchError(
            f"peft: {target} rejected the settings: {cause}.{hint} Every field of {target} can be set "
            "as peft.<field>=... (add a `+` for one that conf/peft/ does not list); peft=none trains "
            "every weight."
        ) from err


FULL = "none"  # the record's `peft/mode` for full fine-tuning (as the config says it: peft=none)


def mode(peft_cfg: DictConfig | None) -> str:
    """A short name for the fine-tuning mode: 'none' (full) or peft's type ('lora', 'ia3', ...)."""
    if peft_cfg is None or is_full(peft_cfg):
        return FULL
    name = str(peft_cfg._target_).rsplit(".", 1)[-1].removesuffix("Config").lower()
    return "dora" if name == "lora" and peft_cfg.get("use_dora") else name


def rank(peft_cfg: DictConfig | None) -> int | None:
    return int(peft_cfg.r) if peft_cfg is not None and not is_full(peft_cfg) and peft_cfg.get("r") is not None else None
