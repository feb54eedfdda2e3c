"""The decode benchmark on a tiny model built here (random weights, real peft LoRA, real generate())."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.measure.perf import kv_bytes
from bench.studies.decode import DEFAULT_PATHS, _generate, _lora_b_nonzero, _models, benchmark, bound_step_s


@pytest.fixture(scope="module")
def tiny():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=True,
    )
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear"))
    _lora_b_nonzero(model, 0)
    return model


def test_every_path_is_timed_against_the_same_bound(tiny):
    rows = benchmark(
        tiny,
        pad_token_id=0,
        batches=[1, 2],
        context=8,
        new_tokens=4,
        paths=list(DEFAULT_PATHS),
        bandwidth=1e10,
        peak=1e11,
        repeats=1,
    )
    assert [(r.path, r.batch) for r in rows] == [(p, b) for b in (1, 2) for p in DEFAULT_PATHS]
    for r in rows:
        assert r.step_ms > 0 and r.tokens_per_s == pytest.approx(r.batch / (r.step_ms / 1e3), rel=0.02)
        assert r.of_bound == pytest.approx(r.tokens_per_s / r.bound_tokens_per_s, rel=0.02)
    assert all(r.speedup == 1.0 for r in rows if r.path == "trl")
    # The bound grows with the batch (the weights are read once per step, whatever the batch).
    one, two = (next(r for r in rows if r.path == "trl" and r.batch == b) for b in (1, 2))
    assert two.bound_tokens_per_s > one.bound_tokens_per_s


def test_the_bound_is_the_slower_of_reading_and_computing():
    assert bound_step_s(100, 1000, 0, 1, bandwidth=1000, peak=1e9) == 1.0  # memory-bound
    assert bound_step_s(100, 1000, 0, 64, bandwidth=1e9, peak=200) == 64.0  # compute-bound: 2N·batch/peak
    config = type(
        "C",
        (),
        {"num_key_value_heads": 2, "num_attention_heads": 4, "head_dim": 8, "hidden_size": 32, "num_hidden_layers": 3},
    )()
    assert kv_bytes(config, batch=2, context=10, element=4) == 2 * 3 * 2 * 8 * 10 * 2 * 4


def test_the_merged_paths_generate_what_the_adapter_does(tiny):
    """Same weights on every path: greedy tokens of the merged model match the unmerged adapter's."""
    runs = _models(tiny, ["trl", "merged", "static", "base"])
    inputs = {"input_ids": torch.arange(1, 9).repeat(2, 1), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    out = {name: _generate(kind, m, inputs, 6, 0) for name, (kind, m) in runs.items()}
    assert torch.equal(out["trl"], out["merged"]) and torch.equal(out["merged"], out["static"])
    logits = {name: runs[name][1](**inputs).logits for name in ("merged", "base")}
    assert not torch.allclose(logits["merged"], logits["base"])  # the adapter changes the model


def test_bad_settings_are_refused_before_any_timing(tiny):
    with pytest.raises(BenchError, match="paths must be among"):
        benchmark(tiny, pad_token_id=0, batches=[1], context=8, new_tokens=4, paths=["vllm"], bandwidth=1, peak=1)
    with pytest.raises(BenchError, match="--new-tokens at least 2"):
        benchmark(tiny, pad_token_id=0, batches=[1], context=8, new_tokens=1, paths=["trl"], bandwidth=1, peak=1)


def test_serving_samples_every_path_and_switch_and_leaves_the_adapters_as_they_were():
    """bench.studies.serving on a tiny two-adapter model: one sample per round for each path and switch, and
    the switches (set, load-and-delete, unmerge-set-merge) leave adapter a active and unmerged."""
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.studies.serving import DECODE, SWITCH, measure

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=True,
    )
    lora = LoraConfig(r=4, target_modules="all-linear")
    model = get_peft_model(LlamaForCausalLM(config), lora, adapter_name="a")
    model.add_adapter("b", copy.deepcopy(lora))
    _lora_b_nonzero(model, 0)
    inputs = torch.arange(1, 9)[None]
    before = model(input_ids=inputs).logits
    result = measure(model, pad_token_id=0, rounds=3, context=8, new_tokens=3)
    assert set(result["decode_ms"]) == set(DECODE) and set(result["switch_ms"]) == set(SWITCH)
    assert all(len(v) == 3 and min(v) > 0 for group in result.values() for v in group.values())
    assert model.active_adapter == "a" and set(model.peft_config) == {"a", "b"}
    assert torch.allclose(model(input_ids=inputs).logits, before, atol=1e-5)  # unmerged again, a active
    with pytest.raises(BenchError, match="--rounds"):
        measure(model, pad_token_id=0, rounds=1, context=8, new_tokens=3)
