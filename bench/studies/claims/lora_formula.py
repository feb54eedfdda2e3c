"""The LoRA parameter count is 2·r·d·layers·modules."""

from __future__ import annotations

from bench.config.compose import CONF_DIR, compose
from bench.studies.claims import REFUTED, SUPPORTED, Verdict, register


@register(
    "lora_formula",
    text="A LoRA adapter has 2·r·d·layers·modules parameters",
    source="the project's brief; most LoRA tutorials",
    rule=(
        "Supported if the formula equals peft's exact count (the audit, on the meta device) for every "
        "bundled model config at the default LoRA settings; refuted if it differs for any of them. There is "
        "no noise: the count is exact, so never inconclusive."
    ),
    sweeps=(),
)
def judge(runs) -> Verdict:
    from bench.config.audit import audit_config

    figures, gaps = {}, []
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        audit = audit_config(compose([f"model={path.stem}"]))
        exact, card = audit.exact, audit.card_formula
        assert card is not None  # every conf/model is audited in the default mode, LoRA: the card's formula applies
        figures[path.stem] = {"exact": exact, "formula": card}
        if card != exact:
            gaps.append(f"{path.stem}: formula {card:,} against {exact:,} ({card / exact - 1:+.0%})")
    if gaps:
        return Verdict(REFUTED, "the formula assumes every adapted projection is d×d; " + "; ".join(gaps), figures)
    return Verdict(SUPPORTED, f"the formula equals the exact count on {len(figures)} models", figures)
