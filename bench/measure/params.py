"""Parameter audit: what peft itself builds, counted per module type, beside the textbook formula 2·r·d·layers·modules.

The exact count comes from wrapping the architecture on the meta device (shapes only, no weights, no
download) with peft's own `get_peft_model` and reading the adapter tensors it created, so it holds for
every architecture and targeting rule peft supports: `all-linear`, regexes, GPT-2's Conv1D, DoRA's
magnitude vectors and `modules_to_save` (rows of their own). The card's formula 2·r·d·layers·modules
assumes every adapted projection is d × d; GQA's k/v and the MLP are not, and the table shows the gap.
The command is bench.studies.params.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench import BenchError


@dataclass
class Row:
    kind: str  # "lora" (A and B), "dora magnitude", "modules_to_save" or "other"
    module: str  # module type, e.g. "q_proj"
    d_in: int
    d_out: int
    count: int = 0  # how many modules of this type
    params: int = 0  # adapter parameters over all of them
    card: int = 0  # the card's 2·r·d per module, summed (lora rows only)


@dataclass
class Audit:
    mode: str  # "lora", "dora", "none" (full fine-tuning), ...
    r: int | None
    hidden_size: int
    num_layers: int
    base_params: int  # the base model's parameters (adapter excluded)
    rows: list[Row] = field(default_factory=list)
    source: str = ""  # where the architecture came from

    @property
    def exact(self) -> int:
        """Every parameter that trains: the adapter's tensors, or the whole model for full fine-tuning."""
        return self.base_params if self.mode == "none" else sum(row.params for row in self.rows)

    @property
    def card_formula(self) -> int | None:
        modules = {row.module for row in self.rows if row.kind == "lora"}
        return 2 * self.r * self.hidden_size * self.num_layers * len(modules) if self.r else None

    def as_metrics(self) -> dict:
        card = self.card_formula
        return {
            "params/audit_exact": self.exact,
            "params/lora_card_formula": card,
            "params/lora_card_ratio": round(card / self.exact, 4) if card and self.exact else None,
            "params/adapted_modules": sorted({row.module for row in self.rows if row.kind == "lora"}),
        }

    def table(self) -> str:
        if self.mode == "none":
            return f"full fine-tuning: all {self.base_params:,} parameters train"
        lines = [
            f"{self.mode} audit: r={self.r}, d={self.hidden_size}, layers={self.num_layers}",
            f"{'kind':<16}{'module':<14}{'count':>6}{'d_in':>8}{'d_out':>8}{'exact':>14}{'card 2rd':>14}",
        ]
        for row in self.rows:
            card = f"{row.card:,}" if row.kind == "lora" else ""
            lines.append(
                f"{row.kind:<16}{row.module:<14}{row.count:>6}{row.d_in:>8}{row.d_out:>8}{row.params:>14,}{card:>14}"
            )
        formula = self.card_formula
        lines.append(f"{'total':<60}{self.exact:>14,}{formula or 0:>14,}")
        lines.append(
            f"exact trainable parameters: {self.exact:,} ({100 * self.exact / self.base_params:.2f}% "
            f"of {self.base_params:,})"
        )
        if formula:
            lines.append(
                f"card formula 2·r·d·layers·modules: {formula:,} ({100 * formula / self.base_params:.2f}%), "
                f"{formula / self.exact:.3f}× the exact"
            )
        return "\n".join(lines)


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct names (last path component) of the model's linear layers: what a target can be."""
    from transformers.pytorch_utils import Conv1D

    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, (nn.Linear, Conv1D))})


def wrap(model: nn.Module, config) -> nn.Module:
    """peft's own wrapping (in place), with its errors turned into one paragraph that lists the targets."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, config)
    except (ValueError, TypeError) as err:
        raise BenchError(
            f"peft could not wrap {type(model).__name__}: {err} This model's linear layers are named: "
            f"{', '.join(linear_layer_names(model))}. Set peft.target_modules to some of them, or to "
            "all-linear."
        ) from err


_ADAPTER = re.compile(r"^(?P<path>.*)\.(?P<part>lora_magnitude_vector|lora_\w+?|modules_to_save)\.")


def audit(wrapped: nn.Module, config, mode: str, source: str = "") -> Audit:
    """Count the trainable tensors of a peft-wrapped model (or of a plain one, for full fine-tuning)."""
    config_: Any = wrapped.config  # a transformers config, behind nn.Module's untyped attribute access
    text = config_.get_text_config() if hasattr(config_, "get_text_config") else config_
    modules = dict(wrapped.named_modules())
    rows: dict[tuple, Row] = {}
    seen: dict[tuple, set[str]] = {}
    base = 0
    for name, param in wrapped.named_parameters():
        match = _ADAPTER.match(name)
        if match is None or not param.requires_grad:
            base += param.numel()
            continue
        path, part = match["path"], match["part"]
        module = modules[path]
        layer = module.get_base_layer() if hasattr(module, "get_base_layer") else module
        d_in = getattr(module, "in_features", 0) or getattr(layer, "in_features", 0)
        d_out = getattr(module, "out_features", 0) or getattr(layer, "out_features", 0)
        kind = {"lora_magnitude_vector": "dora magnitude", "modules_to_save": "modules_to_save"}.get(
            part, "lora" if part.startswith("lora_") else "other"
        )
        key = (kind, path.rsplit(".", 1)[-1], int(d_in), int(d_out))
        row = rows.setdefault(key, Row(*key))
        seen.setdefault(key, set()).add(path)
        row.params += param.numel()
    r = getattr(config, "r", None) if config is not None else None
    for key, row in rows.items():
        row.count = len(seen[key])
        row.card = row.count * 2 * r * text.hidden_size if row.kind == "lora" and r else 0
    if config is None:  # full fine-tuning: nothing is an adapter, everything trains
        base = sum(p.numel() for p in wrapped.parameters())
    return Audit(
        mode=mode,
        r=r,
        hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers,
        base_params=base,
        rows=sorted(rows.values(), key=lambda row: (row.kind != "lora", row.kind, row.module)),
        source=source,
    )


def meta_model(model_config, head: str = "causal_lm") -> nn.Module:
    """The architecture on the meta device: shapes only, no weights, no download."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForCausalLM if head == "causal_lm" else AutoModelForSequenceClassification
    with torch.device("meta"):
        return cls.from_config(copy.deepcopy(model_config))


# The numbers the estimate and the audit read from a config.json; where one is missing, transformers would
# put its class default in silently (Llama's hidden_size 4096). intermediate_size: where the class has one.
REQUIRED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size")


def architecture(model_cfg, arch_for: str | None = None) -> tuple[object, str]:
    """The model's transformers config, and where it came from: a local folder, the local hub cache, or
    conf/model's `arch` numbers (the embedded model, and hub models never downloaded here).

    `arch_for`: the name_or_path the `arch` numbers describe (their conf/model yaml's own). Where given, a
    name_or_path that is none of the three (a hub id set on the command line and never cached here) is
    refused with the fix, rather than estimated with another model's numbers. A config.json without a
    field the architecture needs (REQUIRED_FIELDS) is refused, naming it."""
    from transformers import AutoConfig

    path = str(model_cfg.name_or_path)
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise BenchError(f"model.name_or_path={path!r} is a folder without config.json.")
        return _checked_config(local / "config.json", path), f"{local / 'config.json'}"
    if not path.startswith("embedded:"):
        from transformers.utils import cached_file

        try:
            found = cached_file(
                path,
                "config.json",
                revision=model_cfg.revision,
                local_files_only=True,
                _raise_exceptions_for_missing_entries=False,
            )
        except (OSError, ValueError):  # not cached, or not a valid hub id
            found = None
        if found:
            return _checked_config(Path(found), path, model_cfg.revision), f"{path} (local Hugging Face cache)"
    if arch_for is not None and path != arch_for:
        raise BenchError(
            f"model.name_or_path={path!r}: no config.json for it here (not a folder, not in the local Hugging Face "
            f"cache, and the hub is not reached), and conf/model's arch numbers for {model_cfg.name} describe "
            f"{arch_for!r}, not it. Cache it where the hub is reachable (`hf download {path} config.json`), or "
            "pass a folder holding its config.json: model.name_or_path=DIR."
        )
    arch = dict(model_cfg.arch)
    return AutoConfig.for_model(arch.pop("model_type"), **arch), f"conf/model arch numbers for {model_cfg.name}"


def _checked_config(file: Path, path: str, revision: str | None = None):
    """The transformers config of a config.json, refused where it lacks a field the architecture needs."""
    import json

    from transformers import AutoConfig

    try:
        raw = json.loads(file.read_text())
        config = AutoConfig.from_pretrained(
            file.parent if revision is None else path, revision=revision, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as err:
        raise BenchError(f"model.name_or_path={path!r}: its config.json does not load: {err}") from err
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    nested = raw.get("text_config")  # a multimodal config keeps the language model's numbers apart
    given = nested if text is not config and isinstance(nested, dict) else raw
    aliases = getattr(type(text), "attribute_map", {}) or {}
    missing = [
        f
        for f in REQUIRED_FIELDS
        if hasattr(text, f) and getattr(text, f) is not None and f not in given and aliases.get(f) not in given
    ]
    if missing:
        raise BenchError(
            f"model.name_or_path={path!r}: {file} has no {', '.join(missing)}; transformers would put in "
            f"{type(text).__name__}'s default ({', '.join(f'{f}={getattr(text, f)}' for f in missing)}), another "
            "model's. Add the field(s) from the model's own config.json."
        )
    return config


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; peft's count unpacks 4-bit weights so totals compare across quant."""
    if (peft_count := getattr(model, "get_nb_trainable_parameters", None)) is not None:
        return peft_count()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
