"""Numbers a GPU run records, rehearsed on CPU: the precision a frozen reference is held in, and timings
of asynchronous CUDA work read only once it has finished."""

from __future__ import annotations

import time

import torch

from bench.recipe import dtypes
from bench.studies.serving import _timed


def test_a_full_fine_tunes_reference_is_held_in_the_runs_precision(compose, tmp_path):
    """DPO under full fine-tuning at bf16: TRL loads the reference in fp32 with requires_grad=True (it only
    runs it under no_grad), which the dtype rule once read as trained weights and kept in fp32. Frozen,
    it belongs in bf16 like every frozen weight; the policy keeps its fp32 master weights."""
    from bench.recipe import train
    from bench.recipe.plan import make

    cfg = compose(
        "model=tiny",
        "method=dpo",
        "peft=none",
        "precision=bf16",
        "device=cpu",
        "debug=smoke",
        "eval=none",
        "logger=none",
        output_dir=tmp_path,
    )
    plan = make(cfg)
    trainer, _, _, record = train.build(plan, train.setup(plan), [])
    reference = list(trainer.ref_model.parameters())
    assert record["train/reference_dtypes"] == "bfloat16"
    assert {p.dtype for p in reference} == {torch.bfloat16} and not any(p.requires_grad for p in reference)
    assert record["train/trainable_dtype"] == "float32" and record["train/frozen_dtypes"] == "none"


def test_a_full_fine_tune_of_random_weights_gets_a_reference_of_those_weights(compose, tmp_path):
    """gpu-check's random weights under full fine-tuning: TRL loads the frozen reference from the policy's
    path, which a model built in memory lacks (DPO failed on the empty repo id ''). The random model is
    written once and loaded from its folder, so the reference is the policy's starting weights."""
    from bench.recipe import train
    from bench.recipe.plan import make

    cfg = compose(
        "model=tiny",
        "model.weights=random",
        "method=dpo",
        "peft=none",
        "device=cpu",
        "debug=smoke",
        "eval=none",
        "logger=none",
        output_dir=tmp_path,
    )
    plan = make(cfg)
    trainer, _, _, _ = train.build(plan, train.setup(plan), [])
    policy, reference = dict(trainer.model.named_parameters()), dict(trainer.ref_model.named_parameters())
    assert policy.keys() == reference.keys()
    assert all(torch.equal(policy[name], reference[name]) for name in policy)


def test_a_reference_the_trainer_updates_keeps_fp32():
    """TR-DPO (sync_ref_model) mixes the policy into its reference: updated weights stay fp32."""
    synced, frozen = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    assert dtypes.settle_reference(synced, torch.bfloat16, synced=True) == "float32"
    assert dtypes.settle_reference(frozen, torch.bfloat16) == "bfloat16"


def test_a_timing_on_cuda_waits_for_the_queued_kernels():
    """A merge on CUDA returns once its kernels are queued: the clock is read after the device has
    finished (and started after what was queued before), so the time includes the kernels' own."""
    events = []

    def synchronize():  # the device finishing its queue: 50 ms of kernels the merge left behind
        events.append("synchronize")
        if events.count("synchronize") == 2:
            time.sleep(0.05)

    seconds = _timed(lambda: events.append("merge"), "cuda", synchronize=synchronize)
    assert events == ["synchronize", "merge", "synchronize"] and seconds >= 0.05
    events.clear()
    _timed(lambda: events.append("merge"), "cuda:1", synchronize=synchronize)
    assert events == ["synchronize", "merge", "synchronize"]
    events.clear()
    _timed(lambda: events.append("merge"), "cpu", synchronize=synchronize)
    assert events == ["merge"]  # CPU work is done when the call returns
