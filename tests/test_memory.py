"""Memory read as the harness's own work leaves it: a phase's peak taken as the phase ends (never a live
read that later work raises), the CPU's exact high-water mark beside the samples, and the harness's
checksums far below any training peak. The kernel's own figure (VmHWM, reset through clear_refs) is the
referee on CPU."""

from __future__ import annotations

import time

import pytest
import torch

from bench.measure import metrics, perf
from bench.measure.metrics import CpuPeak, MemorySampler, weight_checksums

needs_vmhwm = pytest.mark.skipif(
    CpuPeak().peak() is None, reason="no /proc/self/status VmHWM on this system: the samples stand alone there"
)


def _hwm_after_reset() -> int:
    peak = CpuPeak()
    peak.reset()
    return peak.peak()


def _fresh(code: str) -> dict:
    """Run a measurement in a fresh process and return what it printed as JSON: a long test session's
    heap holds freed pages that a new allocation reuses without raising the RSS, which would hide a spike
    from the kernel's mark as from any sample."""
    import json
    import subprocess
    import sys
    import textwrap

    prelude = (
        "import json, time, torch\nfrom bench.measure import metrics\nfrom bench.measure.metrics import MemorySampler\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_peak_is_the_phases_not_what_came_after(monkeypatch):
    """A made-up GPU whose allocator's max keeps rising after the phase (the checksums, the accounting):
    the record holds the max as the phase ended."""
    state = {"allocated": 1_000, "max": 5_000, "reserved": 6_000}
    read_on = set()
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "current_device", lambda: 1)  # a launcher's rank 1 set its GPU
    monkeypatch.setattr(cuda, "memory_allocated", lambda index=None: read_on.add(index) or state["allocated"])
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: state["max"])
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda *a: state["reserved"])
    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats"):
        monkeypatch.setattr(cuda, name, lambda *a: None)
    with MemorySampler("cuda", interval_s=10.0) as memory:
        time.sleep(0.05)  # the sampler's thread takes its first sample
    assert read_on == {1}  # the sampler's own thread read rank 1's GPU, not GPU 0
    state.update({"max": 9_000, "reserved": 9_500})  # the harness's work after training
    out = memory.metrics()
    assert memory.peak() == out["sys/peak_mem_bytes"] == 5_000 and out["sys/peak_reserved_bytes"] == 6_000
    assert out["sys/train_mem_bytes"] == 5_000 - out["sys/start_mem_bytes"]


@needs_vmhwm
def test_checksums_add_under_one_percent_of_a_training_peak():
    """A 400 MB tensor (a 100k x 1024 embedding in fp32): checksums once made three float64 copies of it
    (2.4 GB); now they stream it in chunks of half a MB. The least a training peak holding this tensor
    holds is 4 times it (the weight, its gradient, AdamW's two moments): 1% of that is 16 MB."""
    model = torch.nn.Embedding(100_000, 1024)
    torch.nn.init.normal_(model.weight)
    baseline = _hwm_after_reset()
    sums = weight_checksums(model)
    added = CpuPeak().peak() - baseline
    assert added < 0.01 * 4 * 400e6, f"{added / 1e6:.1f} MB over the resident set"
    w = model.weight.detach().double()
    expected = torch.stack([w.sum(), w.abs().sum(), (w * w).sum()])
    assert torch.allclose(sums["weight"][1], expected, rtol=1e-12)


def test_checksums_still_tell_a_moved_weight_from_a_still_one():
    model = torch.nn.Linear(3000, 1000)  # 3M values: several chunks
    before = weight_checksums(model)
    with torch.no_grad():
        model.weight[-1, -1] += 1e-3
    changed = metrics.weights_changed(before, weight_checksums(model))
    assert changed["train/trainable_tensors_changed"] == 1 and changed["train/trainable_tensors"] == 2


@pytest.mark.parametrize("device, world, expected", [("cuda", 1, 1e15), ("cuda", 4, 4e15), ("cpu", 2, 1e15)])
def test_a_jobs_peak_counts_each_gpu_once_and_shared_cores_once(device, world, expected):
    assert perf.job_peak_flops(1e15, device, world) == expected


def test_the_sampler_keeps_its_mean_and_p99():
    with MemorySampler("cpu", interval_s=0.01) as memory:
        time.sleep(0.1)
    out = memory.metrics()
    assert out["sys/peak_mem_bytes"] >= out["sys/p99_mem_bytes"] >= out["sys/avg_mem_bytes"] > 0
    assert out["sys/mem_samples"] >= 3


@needs_vmhwm
def test_which_activity_held_the_peak_is_known_exactly_not_from_samples():
    """A generate() call shorter than a GPU's sampling interval: its 200 MB spike falls between two
    samples (taken every 10 s here), yet it is in the CPU peak (only the kernel's mark sees it) and the
    phase's peak is filed under generation, from the mark closed as the call ends; a later, smaller step
    does not take it over."""
    got = _fresh("""
        with MemorySampler("cpu", interval_s=10.0) as memory:
            while not memory.samples:
                time.sleep(0.001)
            metrics.set_activity("generate")
            spike = torch.ones(50 * 2**20)  # 200 MB, touched: the KV cache's moment
            del spike
            metrics.set_activity("step")
            step = torch.ones(10 * 2**20)  # 40 MB: a training step's activations
            del step
        print(json.dumps({"during": memory.peak_activity(), "peak": memory.peak(), "first": memory.samples[0],
                          "sampled": sorted(set(memory.activity)), **memory.metrics()}))
    """)
    assert got["sampled"] == ["step"]  # the samples never saw the generation
    assert got["during"] == "generate" and got["peak"] >= got["first"] + 150e6
    assert got["sys/mem_peak_exact"] is True


def test_on_a_gpu_each_activitys_allocator_peak_is_closed_as_it_ends(monkeypatch):
    """The same on a made-up GPU: the allocator's max is read and reset at each change of activity."""
    state = {"max": 0}
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(cuda, "memory_allocated", lambda index=None: 100)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: state["max"])
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda *a: state["max"] + 10)
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda *a: state.update(max=100))
    for name in ("synchronize", "empty_cache"):
        monkeypatch.setattr(cuda, name, lambda *a: None)
    with MemorySampler("cuda", interval_s=10.0) as memory:
        state["max"] = 700  # the step before any rollout
        metrics.set_activity("generate")
        state["max"] = 900  # the rollout's KV cache, for a few milliseconds
        metrics.set_activity("step")
        state["max"] = 800  # the next step's activations
    assert memory.peak_activity() == "generate" and memory.peak() == 900
    assert memory.metrics()["sys/peak_reserved_bytes"] == 910


def _breakdown(model, saved: dict | None = None, peak: int = 0) -> dict:
    """memory_breakdown of a bare model, as a trainer holding it and no optimizer would give it."""
    from types import SimpleNamespace

    return metrics.memory_breakdown(SimpleNamespace(model=model), peak, 0, "cpu", saved=saved)


def test_autocasts_bf16_weight_copies_are_their_own_part_not_activations():
    """A trained fp32 Linear(1024, 1024) under CPU bf16 autocast saves, for backward, the bf16 copy of its
    weight autocast made (2 MiB) and the bf16 copy of its 2 x 1024 input (4 KiB): 2,101,248 B, all of it
    once booked as activations. The copy of the weight is its own part; the input (a leaf cast too, but not
    a parameter) stays an activation. Without autocast nothing is copied."""
    from bench.measure.metrics import SavedTensors

    layer = torch.nn.Linear(1024, 1024)
    x = torch.randn(2, 1024, requires_grad=True)  # a hidden state: its gradient is wanted, so W is saved
    with SavedTensors([layer], vocab_size=50) as saved:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.float().sum().backward()
    got = saved.metrics()
    assert got["mem/autocast_copies_bytes"] == 1024 * 1024 * 2  # exactly the weight, in bf16
    assert got["mem/activations_bytes"] == 2 * 1024 * 2 and got["mem/logits_bytes"] == 0
    assert sum(got.values()) == 2_101_248 and not saved.live
    parts = _breakdown(layer, got, peak=2**30)
    assert parts["mem/autocast_copies_bytes"] == 2 * 2**20 and parts["mem/activations_bytes"] == 4096
    from bench.records.schema import MEMORY_PARTS

    assert "mem/autocast_copies_bytes" in MEMORY_PARTS
    assert sum(parts[k] for k in MEMORY_PARTS) + parts["mem/unaccounted_bytes"] == 2**30

    with SavedTensors([layer], vocab_size=50) as plain:
        layer(x).sum().backward()
    assert plain.metrics()["mem/autocast_copies_bytes"] == 0
    assert plain.metrics()["mem/activations_bytes"] == x.nbytes  # fp32: the weight itself, not counted


def test_a_4bit_bases_quantization_state_is_weight_memory(compose):
    """quant=nf4 with double quantization: each 4-bit weight is read through its bitsandbytes QuantState
    (per-block absmax, the code, and the second level's offset, absmax and code), tensors that are neither
    parameters nor buffers. They are frozen weight memory, not "other"."""
    import bitsandbytes as bnb

    from bench.recipe.models import load_base, resolve_model_path
    from bench.system.runtime import Runtime

    cfg = compose("model=tiny", "quant=nf4")
    model = load_base(
        cfg,
        resolve_model_path(cfg.model.name_or_path, cfg.cache_dir),
        Runtime(device="cpu", dtype=torch.float32, precision="fp32"),
    )
    packed = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    states, storages = 0, set()
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for module in quantized:
        q = module.weight.quant_state
        assert q.state2 is not None  # conf/quant/nf4.yaml: double_quant
        for t in (q.absmax, q.code, q.offset, q.state2.absmax, q.state2.code):
            if t.untyped_storage().data_ptr() not in storages:  # the second level's code is shared
                storages.add(t.untyped_storage().data_ptr())
                states += t.nbytes
    assert quantized and states > 0
    assert _breakdown(model)["mem/weights_bytes"] == packed + states
