"""bench.estimate: a method's peak by part from config.json alone, offline, and its parts against a run's."""

from __future__ import annotations

import pytest

from bench.estimate.__main__ import main
from bench.estimate.model import GB, Estimate, Step, estimate


def test_the_cli_prints_each_method_offline_for_a_hub_model(capsys):
    assert main(["model=qwen2.5-3b", "method=grpo,dpo", "quant=nf4", "peft.r=16"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-3b-instruct, bf16, quant=nf4" in out
    assert "| grpo | 4×496 |" in out and "| dpo | 8×500 |" in out  # DPO: chosen and rejected, each row
    assert "24 GiB" in out and "80 GiB" in out


def test_exact_parts_follow_from_the_audit_and_quantization(compose):
    lora = estimate(compose("model=qwen2.5-3b", "method=sft", "precision=bf16"))
    nf4 = estimate(compose("model=qwen2.5-3b", "method=sft", "precision=bf16", "quant=nf4"))
    assert lora.parts["trainable"] == lora.parts["gradients"]
    assert 0 < lora.parts["optimizer"] - 2 * lora.parts["trainable"] < 4096  # two moments, and a step counter a tensor
    assert nf4.parts["weights"] < lora.parts["weights"] / 2.5  # 4-bit linear weights, embeddings in bf16
    full = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16", "peft=none"))
    assert full.parts["extra_models"] > 0  # a full DPO keeps a reference copy; with LoRA the adapter off is it
    assert estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16")).parts["extra_models"] == 0
    assert full.parts["trainable"] == 4 * 3_085_938_688  # every weight trains, in fp32


def test_the_peak_is_the_larger_of_the_step_and_generation():
    parts = {"weights": 10, "trainable": 1, "gradients": 1, "optimizer": 2, "extra_models": 0, "activations": 5,
             "checkpointed": 0, "logits": 3, "kv_cache": 20}
    e = Estimate("grpo", "bf16", parts, Step(1, 1, 1))
    assert e.training == 22 and e.generation == 34 and e.peak == 34
    assert Estimate("x", "bf16", parts | {"weights": 25 * GB}, Step(1, 1, 1)).fits() == {24: False, 40: True, 80: True}


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_an_8b_model_estimates_in_seconds_from_its_numbers(compose, quant):
    e = estimate(compose("model=llama3.1-8b", "method=grpo", f"quant={quant}", "precision=bf16"))
    assert 3 * GB < e.parts["weights"] < 17 * GB and e.parts["kv_cache"] > 0
