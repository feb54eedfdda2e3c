"""LoRA parameter audit: the exact count against the design card's formula 2·r·d·layers·modules.

LoRA on a linear layer W (d_out × d_in) adds A (r × d_in) and B (d_out × r): r·(d_in + d_out)
parameters. The card's formula assumes every adapted projection is d × d, which holds for q/o in
most models but not for GQA's k/v (d_out = kv_heads·head_dim) nor the MLP (d × ffn). The audit
prints both, per module type, so the gap is visible rather than hidden in a ratio.

    python -m bench.params                                  # the default model and LoRA settings
    python -m bench.params model=qwen3-0.6b peft.r=32       # offline: architecture on the meta device
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ModuleRow:
    name: str  # module type, e.g. "q_proj"
    count: int  # how many layers have it
    d_in: int
    d_out: int
    exact: int  # count · r · (d_in + d_out)
    card: int  # count · 2 · r · d


@dataclass
class LoraAudit:
    r: int
    hidden_size: int
    num_layers: int
    rows: list[ModuleRow] = field(default_factory=list)
    total_params: int = 0

    @property
    def exact(self) -> int:
        return sum(row.exact for row in self.rows)

    @property
    def card_formula(self) -> int:
        return 2 * self.r * self.hidden_size * self.num_layers * len(self.rows)

    def as_metrics(self) -> dict:
        return {
            "params/lora_exact": self.exact,
            "params/lora_card_formula": self.card_formula,
            "params/lora_card_ratio": round(self.card_formula / self.exact, 4) if self.exact else None,
            "params/lora_modules": [row.name for row in self.rows],
        }

    def table(self) -> str:
        lines = [
            f"LoRA audit: r={self.r}, d={self.hidden_size}, layers={self.num_layers}, modules={len(self.rows)}",
            f"{'module':<12}{'layers':>7}{'d_in':>8}{'d_out':>8}{'exact r(d_in+d_out)':>22}{'card 2rd':>14}",
        ]
        for row in self.rows:
            lines.append(
                f"{row.name:<12}{row.count:>7}{row.d_in:>8}{row.d_out:>8}{row.exact:>22,}{row.card:>14,}"
            )
        lines.append(f"{'total':<35}{self.exact:>22,}{self.card_formula:>14,}")
        share = (
            f" ({100 * self.exact / self.total_params:.2f}% of {self.total_params:,})"
            if self.total_params
            else ""
        )
        lines.append(f"exact LoRA parameters: {self.exact:,}{share}")
        card_share = f" ({100 * self.card_formula / self.total_params:.2f}%)" if self.total_params else ""
        ratio = self.card_formula / self.exact if self.exact else float("nan")
        lines.append(
            f"card formula 2·r·d·layers·modules: {self.card_formula:,}{card_share}, {ratio:.3f}× the exact"
        )
        return "\n".join(lines)


def matches(module_name: str, target_modules: list[str]) -> str | None:
    """The target key a module name matches, with peft's rule (the name ends with the key)."""
    for key in target_modules:
        if module_name == key or module_name.endswith("." + key):
            return key
    return None


def lora_audit(model: nn.Module, r: int, target_modules: list[str]) -> LoraAudit:
    """Audit the LoRA parameters that `target_modules` at rank `r` add to `model` (base or PEFT-wrapped)."""
    config = model.config
    audit = LoraAudit(r=r, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers)
    rows: dict[str, ModuleRow] = {}
    for name, module in model.named_modules():
        key = matches(name, target_modules)
        # PEFT wraps the target in a LoraLayer whose `base_layer` holds the original Linear.
        base = getattr(module, "base_layer", module)
        if key is None or not hasattr(base, "in_features") or ".base_layer" in name:
            continue
        row = rows.setdefault(key, ModuleRow(key, 0, base.in_features, base.out_features, 0, 0))
        if (row.d_in, row.d_out) != (base.in_features, base.out_features):
            raise ValueError(f"{name}: shape differs from other {key} modules; audit it per module")
        row.count += 1
        row.exact += r * (base.in_features + base.out_features)
        row.card += 2 * r * config.hidden_size
    audit.rows = [rows[key] for key in target_modules if key in rows]
    audit.total_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    return audit


def count_params(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; peft's count unpacks 4-bit weights so totals compare across quant."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def meta_model(arch: dict) -> nn.Module:
    """A model with the given architecture numbers on the meta device: shapes only, no weights, no download."""
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = dict(arch)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def main(argv: list[str] | None = None) -> None:
    from bench.config import compose

    cfg = compose(sys.argv[1:] if argv is None else argv)
    model = meta_model(cfg.model.arch)
    audit = lora_audit(model, cfg.peft.r, list(cfg.peft.target_modules))
    print(f"model: {cfg.model.name} ({cfg.model.arch.model_type}, architecture from conf/model, meta device)")
    print(audit.table())


if __name__ == "__main__":
    main()
