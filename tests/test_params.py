"""The parameter audit: peft's own wrap on the meta device, against counts worked out by hand and
against the count peft reports for the same wrapped architecture with real weights."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import BenchError
from bench.config.audit import audit_config
from bench.measure.params import audit, meta_model, wrap

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Tiny configs of each family: small enough to build with real weights in a second.
TINY = {
    "llama": dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "qwen2": dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "qwen3": dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
    ),
    "gemma2": dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    ),
    "mistral": dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
    "opt": dict(hidden_size=64, ffn_dim=96, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=64),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4),
}


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
    result = audit_config(compose())
    # SmolLM2-135M: d=576, 3 KV heads × 64 = 192, MLP 1536, 30 layers.
    assert result.exact == by_hand(16, 576, 192, 1536, 30) == 4_884_480
    assert result.card_formula == 2 * 16 * 576 * 30 * 7 == 3_870_720
    rows = {row.module: row for row in result.rows}
    assert set(rows) == set(SEVEN) and rows["k_proj"].d_out == 192 and rows["down_proj"].d_in == 1536


def test_qwen3_card_formula_gives_quoted_12_8m(compose):
    result = audit_config(compose("model=qwen3-0.6b", "peft.r=32"))
    assert result.card_formula == 12_845_056  # the often-quoted ≈12.8M
    assert 0.020 < result.card_formula / result.base_params < 0.022  # ≈2.1% of the model
    # Qwen3-0.6B: q has 16 heads × 128 = 2048 outputs, k/v 8 × 128 = 1024, MLP 3072.
    assert result.exact == by_hand(32, 1024, 1024, 3072, 28, q_out=2048) == 20_185_088


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("targets", ["all-linear", None])
def test_audit_equals_what_peft_reports_for_every_family(family, targets):
    """The meta-device audit against peft's own count on the same architecture with real weights."""
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(family, vocab_size=128, **TINY[family])

    # None: peft's default targets for the architecture (q/v, c_attn for GPT-2's Conv1D, ...).
    def lora():  # a fresh config each time: peft resolves its targets in place
        return LoraConfig(r=4, target_modules=targets, task_type="CAUSAL_LM")

    counted = audit(wrap(meta_model(config), lora()), lora(), "lora")
    trainable, _ = wrap(AutoModelForCausalLM.from_config(config), lora()).get_nb_trainable_parameters()
    assert counted.exact == trainable > 0
    assert all(row.count > 0 and row.d_in > 0 and row.d_out > 0 for row in counted.rows)


def test_gpt2_conv1d_layers_are_counted():
    from peft import LoraConfig
    from transformers import AutoConfig

    config = AutoConfig.for_model("gpt2", vocab_size=128, **TINY["gpt2"])
    lora = LoraConfig(r=2, target_modules=["c_attn", "c_proj", "c_fc"], task_type="CAUSAL_LM", fan_in_fan_out=True)
    rows = {row.module: row for row in audit(wrap(meta_model(config), lora), lora, "lora").rows}
    assert (rows["c_attn"].d_in, rows["c_attn"].d_out) == (64, 192)  # fused q, k, v
    assert rows["c_attn"].params == 2 * 2 * (64 + 192)  # two layers, r(d_in + d_out) each


def test_dora_and_modules_to_save_are_rows_of_their_own(compose):
    result = audit_config(compose("peft=dora", "peft.modules_to_save=[lm_head]"))
    kinds = {row.kind for row in result.rows}
    assert kinds == {"lora", "dora magnitude", "modules_to_save"}
    magnitude = sum(row.params for row in result.rows if row.kind == "dora magnitude")
    assert magnitude == 30 * (576 + 192 + 192 + 576 + 1536 + 1536 + 576)  # one per output channel
    assert result.exact == 4_884_480 + magnitude + 576 * 49152


def test_a_target_matching_nothing_is_rejected_with_the_layer_names(compose):
    with pytest.raises(BenchError, match=r"not found in the base model.*q_proj.*all-linear"):
        audit_config(compose("peft.target_modules=[nope]"))


def test_full_fine_tuning_trains_everything(compose):
    result = audit_config(compose("peft=none"))
    assert result.mode == "none" and result.exact == result.base_params == 134_515_008


def test_architecture_comes_from_a_local_folder(compose, tmp_path):
    from transformers import AutoConfig

    AutoConfig.for_model("llama", vocab_size=128, **TINY["llama"]).save_pretrained(tmp_path)
    result = audit_config(compose(f"model.name_or_path={tmp_path}"))
    assert str(tmp_path) in result.source and result.hidden_size == 64 and result.num_layers == 2


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], "4,884,480"),
        (["model=qwen3-0.6b", "peft.r=32"], "12,845,056"),
        (["peft.target_modules=all-linear"], "4,884,480"),
    ],
)
def test_params_cli_prints_the_audit(overrides, expected, capsys):
    from bench.studies.params import main

    assert main(overrides) == 0
    out = capsys.readouterr().out
    assert expected in out and "conf/model arch" in out


def test_params_cli_fails_on_a_target_matching_nothing(capsys):
    from bench.studies.params import main

    assert main(["peft.target_modules=[nope]"]) == 2
    assert "not found in the base model" in capsys.readouterr().err


def test_params_cli_runs_offline_as_a_command():
    """The command itself, in a fresh process with the Hub unreachable (the other CLI tests call main)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.studies.params", "model=qwen3-0.6b", "peft.r=32"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0 and "12,845,056" in out.stdout and "conf/model arch" in out.stdout
