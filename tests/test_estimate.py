"""bench.estimate: a method's peak by part from config.json alone, offline, and its parts against a run's."""

from __future__ import annotations

import pytest

from bench.estimate.__main__ import main
from bench.estimate.model import Estimate, GiB, Step, estimate
from methods import why_unavailable


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
             "checkpointed": 0, "logits": 3, "head_tile": 0, "kv_cache": 20}
    e = Estimate("grpo", "bf16", parts, Step(1, 1, 1))
    assert e.training == 22 and e.generation == 34 and e.peak == 34
    assert Estimate("x", "bf16", parts | {"weights": 24 * GiB}, Step(1, 1, 1)).fits() == {24: False, 40: True, 80: True}
    assert Estimate("x", "bf16", parts | {"weights": 23 * GiB}, Step(1, 1, 1)).fits()[24]  # 23 GiB and a few bytes: fits


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_an_8b_model_estimates_in_seconds_from_its_numbers(compose, quant):
    e = estimate(compose("model=llama3.1-8b", "method=grpo", f"quant={quant}", "precision=bf16"))
    assert 3 * GiB < e.parts["weights"] < 16 * GiB and e.parts["kv_cache"] > 0


def test_the_loss_head_follows_the_installed_trl(compose):
    """TRL 1.12 saves the scored positions' logits. A TRL whose DPO trainer patches in its chunked LM head
    (1.16) saves nothing vocabulary-wide and holds one tile instead: on a GPU only the completion
    positions go through it (TRL's Triton path), on a CPU every position does."""
    from trl.trainer import dpo_trainer

    gpu = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16"))
    cpu = estimate(compose("model=qwen2.5-3b", "method=dpo", "precision=bf16", "device=cpu"))
    if hasattr(dpo_trainer, "add_fused_lm_head"):
        from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
        from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

        assert gpu.parts["logits"] == cpu.parts["logits"] == 0
        for e, positions in ((gpu, gpu.step.completion), (cpu, cpu.step.tokens)):
            rows_tokens = e.step.rows * positions
            assert e.parts["head_tile"] == min(rows_tokens, TOKEN_CHUNK_SIZE) * _CHUNKED_LOGPROB_CHUNK_SIZE * 2
        assert gpu.step.completion < gpu.step.tokens
    else:
        assert gpu.parts["head_tile"] == 0
        assert gpu.parts["logits"] == gpu.step.rows * gpu.step.tokens * 151_936 * 2  # every position, bf16
    assert gpu.training == sum(v for k, v in gpu.parts.items() if k != "kv_cache")


def test_bco_saves_its_logits_twice(compose):
    """TRL 1.12's BCOTrainer sums its logits for metrics with autograd on: a second copy (measured 0.49 before)."""
    bco = compose("model=tiny", "method=bco", "precision=fp32", "device=cpu")
    if why_unavailable(bco.method):
        pytest.skip("BCO needs TRL 1.12 (the default lock)")
    kto = estimate(compose("model=tiny", "method=kto", "precision=fp32", "device=cpu"))
    assert estimate(bco).parts["logits"] == 2 * kto.parts["logits"] > 0


def test_several_models_and_quantizations_print_one_peak_a_cell(capsys, compose):
    assert main(["model=tiny,smollm2-135m", "quant=none,nf4", "method=dpo,kto", "precision=bf16"]) == 0
    out = capsys.readouterr().out
    assert "| method | tiny none | tiny nf4 | smollm2-135m none | smollm2-135m nf4 |" in out
    peak = estimate(compose("model=smollm2-135m", "quant=nf4", "method=kto", "precision=bf16")).peak
    assert out.splitlines()[-1].split(" | ")[-1].rstrip(" |") == f"{peak / 2**30:.1f}"
    assert main(["quant=none,nf4", "method=sft,ppo"]) == 0  # the model not listed: the default names its column
    out = capsys.readouterr().out
    assert "| method | smollm2-135m-instruct none | smollm2-135m-instruct nf4 |" in out
    assert ("| ppo | – | – |" in out) == bool(why_unavailable(compose("method=ppo").method))


def test_methods_the_installed_trl_lacks_are_left_out_by_name(capsys, compose):
    """PPO and BCO under TRL 1.16: said on stderr, the others estimated; none left at all is an error."""
    missing = [m for m in ("ppo", "bco") if why_unavailable(compose(f"method={m}").method)]
    if not missing:
        pytest.skip("the installed TRL has PPO and BCO (the default lock)")
    assert main(["model=tiny", f"method=kto,{missing[0]}"]) == 0
    captured = capsys.readouterr()
    assert "| kto |" in captured.out and f"| {missing[0]} |" not in captured.out
    assert "left out: method=" in captured.err
    assert main(["model=tiny", "method=" + ",".join(missing)]) == 2
    assert "none of the methods listed" in capsys.readouterr().err


def test_rollouts_hold_every_layers_keys_and_values_for_the_generation_batch(compose):
    """GRPO on Qwen2.5-3B (36 layers, 2 KV heads of 128): the KV cache of its generation batch at prompt +
    completion tokens, in bf16; its loss is taken on the completion positions alone."""
    e = estimate(compose("model=qwen2.5-3b", "method=grpo", "precision=bf16"))
    assert e.step.generate_tokens == e.step.tokens and e.step.completion == e.step.scored == 64
    assert e.parts["kv_cache"] == 2 * 36 * 2 * 128 * e.step.generate_rows * e.step.generate_tokens * 2 > 0
