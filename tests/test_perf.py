"""perf/*: the FLOP model on hand-worked inputs, the cached peaks, MFU, and tokens split by kind on a
tiny random llama (a training forward, a no-grad forward and generation, each in its own bucket)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.measure import perf


@pytest.fixture
def fake_peaks(monkeypatch):
    """Benchmarks replaced by fixed numbers that count their calls: the cache must call each once."""
    calls = {"flops": 0, "bandwidth": 0}

    def flops(device, dtype, budget_s=1.5):
        calls["flops"] += 1
        return 100e9

    def bandwidth(device, budget_s=1.5):
        calls["bandwidth"] += 1
        return 10e9

    monkeypatch.setattr(perf, "_matmul_flops_per_s", flops)
    monkeypatch.setattr(perf, "_copy_bytes_per_s", bandwidth)
    return calls


def test_flops_by_hand():
    # N = 1000 parameters, T = 10 trained: a trained token costs 4N + 2T = 4020, anything else 2N.
    tokens = {"trained": 3, "forward": 5, "generated": 7}
    assert perf.model_flops(1000, 10, tokens) == 3 * 4020 + (5 + 7) * 2000
    # Full fine-tuning (T = N) is the classic 6N per trained token; T above N (an untied embedding
    # table that trains but does no matmul) is capped at N.
    assert perf.model_flops(1000, 1000, {"trained": 1}) == 6000
    assert perf.model_flops(1000, 1500, {"trained": 1}) == 6000
    assert perf.model_flops(1000, 10, {}) == 0


def test_peaks_are_measured_once_and_cached(tmp_path, fake_peaks):
    for _ in range(3):
        assert perf.peak_flops("cpu", torch.float32, tmp_path) == 100e9
        assert perf.peak_bandwidth("cpu", tmp_path) == 10e9
    assert fake_peaks == {"flops": 1, "bandwidth": 1}
    # Another dtype is another peak.
    perf.peak_flops("cpu", torch.bfloat16, tmp_path)
    assert fake_peaks["flops"] == 2
    files = sorted(p for p in (tmp_path / "perf").glob("*.json") if not p.name.endswith(".manifest.json"))
    assert len(files) == 3  # each beside its manifest (bench.system.cache)
    record = json.loads(files[-1].read_text())
    assert record["key"]["device"] == "cpu" and record["key"]["threads"] == torch.get_num_threads()


def test_mfu_is_achieved_over_peak(tmp_path, fake_peaks):
    tokens = {"trained": 100, "forward": 50, "generated": 40}
    decode = perf.Decode(tokens=32, seconds=0.5, steps=8)  # batch 4, 64 tokens/s
    out = perf.perf_metrics(
        params=1_000_000,
        trainable=10_000,
        tokens=tokens,
        train_s=2.0,
        device="cpu",
        dtype=torch.float32,
        cache_dir=tmp_path,
        decode=decode,
    )
    flops = 100 * 4_020_000 + 90 * 2_000_000
    assert out["perf/flops"] == flops
    assert out["perf/flops_per_s"] == pytest.approx(flops / 2.0)
    assert out["perf/mfu"] == pytest.approx(flops / 2.0 / 100e9, rel=1e-3)
    assert out["perf/tokens_generated"] == 40
    # Decode bound: 10 GB/s × batch 4 / 4 MB of fp32 weights = 10,000 tokens/s, below the compute
    # bound 100e9 / 2e6 = 50,000 tokens/s.
    assert out["perf/decode_tokens_per_s"] == 64
    assert out["perf/decode_bound_tokens_per_s"] == pytest.approx(10_000)
    assert out["perf/decode_efficiency"] == pytest.approx(64 / 10_000)
    # Without generation no decode keys (and no bandwidth benchmark).
    out = perf.perf_metrics(
        params=1_000_000,
        trainable=10_000,
        tokens={"trained": 10},
        train_s=1.0,
        device="cpu",
        dtype=torch.float32,
        cache_dir=tmp_path / "other",
    )
    assert "perf/decode_tokens_per_s" not in out and out["perf/mfu"] > 0


def _llama(**overrides):
    """A tiny random llama (GQA: 4 heads, 2 key/value heads, tied embeddings unless overridden)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **(settings | overrides)))


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    return _llama().eval()


def test_token_kinds_buckets(tiny_llama):
    model = tiny_llama
    ids = torch.randint(3, 128, (2, 6))
    kinds = perf.TokenKinds(model)
    try:
        model(input_ids=ids).logits.sum().backward()  # training forward: autograd on
        assert kinds.tokens == {"trained": 12, "forward": 0, "generated": 0}
        with torch.no_grad():
            model(input_ids=ids)  # reference / scoring forward
        assert kinds.tokens == {"trained": 12, "forward": 12, "generated": 0}
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=5,
            min_new_tokens=5,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
        # The prefill (2 × 6) is a forward; the first new token comes from it, the other 4 are decode
        # steps of batch 2. The first decode step is untimed (its interval holds the prefill).
        assert kinds.tokens == {"trained": 12, "forward": 24, "generated": 8}
        assert kinds.total == 44
        assert kinds.decode.steps == 3 and kinds.decode.tokens == 6 and kinds.decode.seconds > 0
        assert kinds.decode.batch == 2
    finally:
        kinds.close()
    model(input_ids=ids)
    assert kinds.total == 44  # closed: no longer counting


def test_token_kinds_survive_peft_wrap(tiny_llama):
    from peft import LoraConfig, get_peft_model

    kinds = perf.TokenKinds(tiny_llama)  # on the base, as the harness does, before the trainer wraps it
    wrapped = get_peft_model(tiny_llama, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    try:
        wrapped(input_ids=torch.ones(1, 3, dtype=torch.long)).logits.sum().backward()
        assert kinds.tokens["trained"] == 3
        # Tied embeddings: N is every parameter; the LoRA weights are matmul parameters too.
        total = sum(p.numel() for p in wrapped.parameters())
        assert perf.flop_params(wrapped) == total
        assert perf.weight_bytes(wrapped) == 4 * total
    finally:
        kinds.close()
        wrapped.unload()


def test_flop_params_drops_an_untied_lookup_table():
    model = _llama(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=100,
        tie_word_embeddings=False,
    )
    total = sum(p.numel() for p in model.parameters())
    assert perf.flop_params(model) == total - 100 * 32
    assert perf.weight_bytes(model) == 4 * (total - 100 * 32)  # fp32


def test_overhead_table_from_raw_runs():
    """bench.studies.overhead's summary (no training here): medians over repeats, best runs, per-repeat ratios."""
    from bench.studies import overhead

    def side(step, wall, **extra):
        return {
            "steps": 6,
            "step_s": step,
            "step_cpu_s": 2 * step,
            "train_s": 6 * step,
            "wall_s": wall,
            **extra,
        }

    raw = {
        "dpo": {
            "harness": [side(1.0, 30, outside_share=0.2), side(1.2, 34, outside_share=0.3)],
            "plain": [side(1.0, 20), side(1.0, 22)],
        }
    }
    (row,) = overhead.summarize(raw)
    assert row["step_s_ratio"] == pytest.approx(1.1) and row["wall_s_ratio"] == pytest.approx(32 / 21)
    assert row["harness_outside_share"] == pytest.approx(0.25) and row["repeats"] == 2
    # Back-to-back pairs: 1.0/1.0 and 1.2/1.0; each side's fastest run: 1.0 against 1.0.
    assert (row["step_ratio_low"], row["step_ratio_high"]) == pytest.approx((1.0, 1.2))
    assert row["best_step_s_ratio"] == pytest.approx(1.0)
    table = overhead.markdown([row], None, "python -m bench.studies.overhead")
    assert "| dpo | 6 | 1.100 | 1.000 | 1.100 | 1.000 | 1.200 | 1.000 |" in table and "25.0%" in table


def test_overhead_profile_splits_added_work_from_machine_speed():
    """Work the harness adds = its calls beyond the plain run's; equal-count functions give the speed."""
    from bench.studies import overhead

    def stat(calls, tottime):  # pstats' (primitive calls, calls, tottime, cumtime, callers)
        return (calls, calls, tottime, tottime, {})

    linear, hook, isinstance_ = ("~", 0, "linear"), ("bench/perf.py", 180, "_hook"), ("~", 0, "isinstance")
    plain = {linear: stat(100, 10.0), isinstance_: stat(1000, 0.1)}
    # The harness ran the same 100 linears 10% slower (the machine), added a hook and 1000 isinstances.
    harness = {linear: stat(100, 11.0), isinstance_: stat(2000, 0.3), hook: stat(50, 0.05)}
    out = overhead.added_work(harness, plain, steps=10)
    # hook 0.05 s + half of isinstance's 0.3 s = 0.2 s over 10 steps; plain's profile holds 10.1 s.
    assert out["added_ms_per_step"] == pytest.approx(20.0)
    assert out["added_share"] == pytest.approx(0.2 / 10.1)
    assert out["same_work_speed_ratio"] == pytest.approx(1.1)


def test_saved_tensors_counts_what_backward_holds_and_not_the_weights():
    """y = relu(x @ W) · head: matmuls save their inputs (x, relu's output) and their weights (parameters:
    not counted), relu saves its output; the vocabulary-wide tensor is counted as logits. Backward
    releases all of it."""
    from bench.measure.metrics import SavedTensors

    w = torch.nn.Parameter(torch.randn(8, 16))
    head = torch.nn.Parameter(torch.randn(16, 50))
    x = torch.randn(4, 8)
    module = torch.nn.Module()
    module.w, module.head = w, head
    with SavedTensors([module], vocab_size=50) as saved:
        hidden = torch.relu(x @ w)  # saves x (matmul) and the relu output (4×16)
        logits = hidden @ head
        loss = torch.log_softmax(logits, dim=-1).sum()  # saves its 4×50 output: vocabulary width
        held = dict(saved.now)
        loss.backward()
    assert held["activations"] == x.nbytes + hidden.nbytes  # hidden is saved by relu and the matmul: once
    assert held["logits"] == 4 * 50 * 4
    assert saved.now == {"activations": 0, "logits": 0, "autocast_copies": 0} and not saved.live
    assert saved.metrics() == {
        "mem/activations_bytes": x.nbytes + hidden.nbytes,
        "mem/logits_bytes": 800,
        "mem/autocast_copies_bytes": 0,
    }  # fp32, no autocast: nothing cast
