"""The LoRA audit against counts worked out by hand, and against what peft actually creates."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench.params import lora_audit, meta_model

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def by_hand(r: int, d: int, kv: int, ffn: int, layers: int, q_out: int | None = None) -> int:
    q_out = q_out or d
    per_layer = (
        r * (d + q_out)  # q_proj: d -> heads·head_dim
        + 2 * r * (d + kv)  # k_proj, v_proj: d -> kv_heads·head_dim (GQA)
        + r * (q_out + d)  # o_proj
        + 3 * r * (d + ffn)  # gate, up: d -> ffn; down: ffn -> d
    )
    return per_layer * layers


def test_smollm2_audit_matches_hand_count(compose):
    cfg = compose()
    audit = lora_audit(meta_model(cfg.model.arch), 16, SEVEN)
    # SmolLM2-135M: d=576, 3 KV heads × 64 = 192, MLP 1536, 30 layers.
    assert audit.exact == by_hand(16, 576, 192, 1536, 30) == 4_884_480
    assert audit.card_formula == 2 * 16 * 576 * 30 * 7 == 3_870_720
    assert [row.name for row in audit.rows] == SEVEN


def test_qwen3_card_formula_gives_quoted_12_8m(compose):
    cfg = compose("model=qwen3-0.6b")
    audit = lora_audit(meta_model(cfg.model.arch), 32, SEVEN)
    assert audit.card_formula == 12_845_056  # the often-quoted ≈12.8M
    assert 0.020 < audit.card_formula / audit.total_params < 0.022  # ≈2.1% of the model
    # Qwen3-0.6B: q has 16 heads × 128 = 2048 outputs, k/v 8 × 128 = 1024, MLP 3072.
    assert audit.exact == by_hand(32, 1024, 1024, 3072, 28, q_out=2048) == 20_185_088


def test_exact_count_equals_peft_trainable_parameters(compose):
    from peft import LoraConfig, get_peft_model

    cfg = compose()
    model = get_peft_model(
        meta_model(cfg.model.arch), LoraConfig(r=8, target_modules=["q_proj", "down_proj"])
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_audit(model, 8, ["q_proj", "down_proj"]).exact == trainable


def test_audit_rejects_nothing_it_cannot_see():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    model.config = type("C", (), {"hidden_size": 4, "num_hidden_layers": 1})()
    assert lora_audit(model, 2, ["q_proj"]).exact == 0


@pytest.mark.parametrize(
    "overrides, expected", [([], "4,884,480"), (["model=qwen3-0.6b", "peft.r=32"], "12,845,056")]
)
def test_params_cli_runs_offline(overrides, expected):
    out = subprocess.run(
        [sys.executable, "-m", "bench.params", *overrides],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert expected in out.stdout
