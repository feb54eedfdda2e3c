"""Device decisions on made-up GPUs: what a first GPU run would compute on, in which precision, where its
weights go and which GPUs it may use; each of these was wrong in code that had never run on a GPU."""

from __future__ import annotations

import os

import pytest
import torch

from bench import BenchError
from bench.system.devices import Device, choose, one_gpu_per_run, parse, precision, trains_in_fp32
from bench.system.runtime import Runtime, resolve_runtime
from tests.conftest import needs

H100 = Device("cuda", count=1, index=0, bf16=True, name="NVIDIA H100 80GB HBM3")
T4 = Device("cuda", count=1, index=0, bf16=False, name="Tesla T4")


@pytest.mark.parametrize(
    "text, parsed",
    [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)), ("cuda:1", ("cuda", 1))],
)
def test_a_device_request_is_read_as_written(text, parsed):
    assert parse(text) == parsed


@pytest.mark.parametrize("text", ["gpu", "cpu:1", "cuda:x", "mps"])
def test_a_device_request_that_is_none_of_them_is_refused_not_run_on_cpu(text):
    with pytest.raises(BenchError, match="not one of auto, cpu, cuda, cuda:N"):
        parse(text)


def test_each_process_of_a_launcher_takes_its_own_gpu():
    assert choose("auto", count=0, local_rank=None) == ("cpu", None)
    assert choose("auto", count=8, local_rank=None) == ("cuda", 0)
    assert choose("auto", count=8, local_rank=3) == ("cuda", 3)
    assert choose("cuda:1", count=2, local_rank=None) == ("cuda", 1)
    with pytest.raises(BenchError, match="sees 1 CUDA device"):
        choose("cuda:1", count=1, local_rank=None)
    with pytest.raises(BenchError, match="sees no CUDA device"):
        choose("cuda", count=0, local_rank=None)
    with pytest.raises(BenchError, match="under a launcher.*every rank would share"):
        choose("cuda:1", count=8, local_rank=3)


def test_precision_is_bf16_only_where_the_gpu_has_it():
    assert precision(Device("cpu"), "auto") == "fp32"
    assert precision(H100, "auto") == "bf16"
    assert precision(T4, "auto") == "fp16"
    with pytest.raises(BenchError, match="Tesla T4 has no native bf16.*precision=fp16"):
        precision(T4, "bf16")
    with pytest.raises(BenchError, match="not one of auto"):
        precision(H100, "fp8")


def test_weights_go_to_an_indexed_device_that_accelerate_recognises():
    """QLoRA's device_map under `accelerate launch --multi_gpu` on rank 1: `cuda:1`, never a bare `cuda`."""
    second = Device("cuda", count=2, index=1, bf16=True, name="H100")
    runtime = resolve_runtime("auto", "auto", described=second)
    assert (runtime.device, runtime.placement, runtime.precision, runtime.dtype) == (
        "cuda",
        "cuda:1",
        "bf16",
        torch.bfloat16,
    )
    assert runtime.trainer_flags == {"bf16": True, "fp16": False, "use_cpu": False}
    assert resolve_runtime("cpu", "auto").placement == "cpu"


def test_full_fine_tuning_keeps_fp32_master_weights_under_bf16():
    assert trains_in_fp32("bf16", full_finetune=True) and trains_in_fp32("fp16", full_finetune=True)
    assert not trains_in_fp32("bf16", full_finetune=False) and not trains_in_fp32("fp32", full_finetune=True)
    # Why: a bf16 weight near 1 does not move for an update of 1e-5 (its spacing there is 2**-7).
    one = torch.ones((), dtype=torch.bfloat16)
    assert one + 1e-5 == one and torch.ones(()) + 1e-5 != torch.ones(())


@pytest.mark.parametrize("peft, dtype", [("none", torch.float32), ("lora", torch.bfloat16)])
def test_a_full_fine_tune_loads_fp32_weights_and_a_lora_base_the_runs_dtype(compose, peft, dtype):
    from bench.recipe.models import load_base, resolve_model_path

    cfg = compose("model=tiny", f"peft={peft}")
    bf16 = Runtime(device="cpu", dtype=torch.bfloat16, precision="bf16")
    model = load_base(cfg, resolve_model_path(cfg.model.name_or_path, cfg.cache_dir), bf16)
    assert {p.dtype for p in model.parameters()} == {dtype}


def test_a_run_that_sees_several_gpus_without_a_launcher_is_refused_before_any_work(compose, tmp_path):
    from bench.config.validation import validate

    one_gpu_per_run(1, 0, launched=False)
    one_gpu_per_run(8, 0, launched=True)  # accelerate gives each process its own
    eight = Runtime(device="cuda", dtype=torch.bfloat16, precision="bf16", index=2, gpus_visible=8)
    with pytest.raises(BenchError, match=r"sees 8 GPUs and no launcher.*`device=cuda:2` \(with isolate=true"):
        validate(compose("model=tiny", output_dir=tmp_path), eight)


def test_a_gpu_run_never_shares_a_hash_with_the_same_settings_on_cpu(compose, monkeypatch):
    """device=auto and precision=auto are hashed as they resolve: a claim sweep's `reuse:` on a GPU must not
    copy the committed CPU runs in as GPU results. CPU fp32 hashes are those every earlier run recorded."""
    from bench.config.hashing import recorded_hash
    from bench.system import devices

    cfg = compose("method=dpo", "model=tiny")
    monkeypatch.setattr(devices, "describe", lambda requested="auto": Device("cpu"))
    on_cpu = recorded_hash(cfg)
    monkeypatch.setattr(devices, "describe", lambda requested="auto": H100)
    on_h100 = recorded_hash(cfg)
    monkeypatch.setattr(devices, "describe", lambda requested="auto": T4)
    assert len({on_cpu, on_h100, recorded_hash(cfg)}) == 3  # T4: fp16, another GPU


def test_a_gpus_base_scores_and_offline_data_are_cached_apart_from_the_cpus(compose):
    from bench.recipe.models import model_key

    cfg = compose("model=tiny")
    cpu = Runtime(device="cpu", dtype=torch.float32, precision="fp32")
    gpu = Runtime(device="cuda", dtype=torch.float32, precision="fp32", index=0, gpus_visible=1)
    assert model_key(cfg, "p", cpu) != model_key(cfg, "p", gpu)


def test_the_gpu_check_without_a_gpu_validates_every_configuration_and_says_so_in_one_line(capsys, monkeypatch):
    from bench.studies import gpu_check
    from bench.system import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on this project's machines
    monkeypatch.setattr(devices, "_driver", lambda: None)  # a GPU node running the suite is no such machine
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"gpu-check: no CUDA GPU on this machine; nothing was run ({len(gpu_check.checks())} of "
        f"{len(gpu_check.checks())} configurations validate)."
    ]
    names = [name for name, _ in gpu_check.checks()]
    assert {"grpo-nf4", "dpo-none", "sft-full", "grpo-merged-rollouts"} <= set(names)
    assert len(names) == 12 - 2 * len(gpu_check.left_out())  # PPO with LoRA and QLoRA where TRL has it


def test_the_gpu_check_table_has_a_row_per_run_and_every_column():
    from bench.studies import gpu_check

    record = {
        "status": "success",
        "sys/peak_mem_bytes": 2**30,
        "train/trainable_dtype": "float32",
        "perf/mfu": 0.25,
        "estimate/peak_bytes": 2**29,
        "estimate/ratio": 0.5,
    }
    text = gpu_check.table({"dpo-nf4": record, "ppo-none": {"status": "failed"}})
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].count("|") == len(gpu_check.COLUMNS) + 2
    assert "| dpo-nf4 | success | 1 |" in text and "| float32 |" in text and "| 25 |" in text
    assert "| 0.5 | 0.5 |" in text  # the predicted peak beside the measured, and their ratio
    assert lines[3].startswith("| ppo-none | failed |")


def test_the_gpu_check_sets_the_estimate_beside_each_runs_peak(compose):
    """On the GPU the estimate is checked against the CUDA allocator's peak: each row gets the prediction for
    its own config at its own prompt length, and none where the run failed."""
    from bench.estimate.model import estimate
    from bench.studies import gpu_check

    cfg = compose("method=dpo", "model=tiny", "quant=nf4", *gpu_check.COMMON)
    row = gpu_check.predicted(cfg, {"status": "success", "data/max_prompt_tokens": 40, "sys/peak_mem_bytes": 2**30})
    assert row["estimate/peak_bytes"] == estimate(cfg, prompt_tokens=40).peak > 0
    assert row["estimate/ratio"] == row["estimate/peak_bytes"] / 2**30
    assert gpu_check.predicted(cfg, {"status": "failed", "error": "CUDA out of memory"}) == {}


def test_an_estimate_that_fails_is_recorded_beside_the_run_not_raised(compose, monkeypatch):
    """The runs took paid GPU time: a failing estimate must not lose the table."""
    from bench.estimate import model
    from bench.studies import gpu_check

    def broken(cfg, prompt_tokens=None):
        raise ValueError("no such architecture")

    monkeypatch.setattr(model, "estimate", broken)
    row = gpu_check.predicted(
        compose("method=dpo", "model=tiny"),
        {"status": "success", "data/max_prompt_tokens": 40, "sys/peak_mem_bytes": 2**30},
    )
    assert row == {"estimate/error": "ValueError: no such architecture"}


def test_merges_that_must_be_exact_happen_only_in_fp32(compose, tmp_path):
    """Merged rollouts at bf16 would drift the frozen base (merge, unmerge, round, at every rollout); merged
    scoring at bf16 would round a small trained delta away: refused, and scored unmerged."""
    from bench.config.validation import validate
    from bench.recipe.evaluate import scoring_path

    bf16 = Runtime(device="cuda", dtype=torch.bfloat16, precision="bf16", index=0, gpus_visible=1)
    with pytest.raises(BenchError, match="rounds the frozen weights at every rollout.*precision=fp32"):
        validate(compose("method=grpo", "model=tiny", "train.rollout=merged", output_dir=tmp_path), bf16)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert scoring_path(compose(), tmp_path) == "merged"  # fp32: merged, the default
    assert scoring_path(compose(), tmp_path, precision="bf16") == "adapter"
    assert scoring_path(compose(), tmp_path, merge=True, precision="fp16") == "adapter"


def test_a_value_head_trains_in_fp32_among_bf16_frozen_layers_and_runs_outside_autocast(compose):
    """PPO's value model (and its reward model) under LoRA at bf16: the new score head trains in fp32 master
    weights like the adapter, not in pure bf16; PPO scores rollouts outside autocast, so the head casts the
    bf16 hidden state itself and hands bf16 on, as autocast would."""
    from bench.recipe.models import resolve_model_path
    from bench.recipe.train import load_policy_copy

    cfg = compose("model=tiny", "method=ppo")
    bf16 = Runtime(device="cpu", dtype=torch.bfloat16, precision="bf16")
    value = load_policy_copy(resolve_model_path(cfg.model.name_or_path, cfg.cache_dir), bf16, cfg, head="value")
    trained = {n: p.dtype for n, p in value.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trained) and set(trained.values()) == {torch.float32}
    assert {p.dtype for p in value.parameters() if not p.requires_grad} == {torch.bfloat16}
    backbone = getattr(value, value.base_model_prefix)
    hidden = backbone(input_ids=torch.tensor([[1, 2, 3]]), output_hidden_states=True).hidden_states[
        -1
    ]  # TRL's get_reward
    assert hidden.dtype == torch.bfloat16 and value.score(hidden).dtype == torch.bfloat16


@needs("ppo")
def test_ppo_trains_a_4bit_base_at_bf16_with_the_same_dtypes_as_lora(compose, tmp_path):
    """PPO with quant=nf4 at bf16 crashed ("expected m1 and m2 to have the same dtype"): TRL's PPO cast the
    4-bit model's norms to fp32 while its rollouts run without autocast. One dtype rule for every trainer
    (bench.recipe.dtypes.settle_dtypes): trained weights fp32 (TRL had cast QLoRA's adapter to bf16), frozen
    ones in the run's dtype, so LoRA and QLoRA differ in the base's quantization alone."""
    from bench.run.runner import run

    record = run(
        compose(
            "method=ppo",
            "model=tiny",
            "quant=nf4",
            "precision=bf16",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["train/trainable_dtype"] == "float32" and record["train/frozen_dtypes"] == "bfloat16+uint8"
    assert record["train/frozen_tensors_changed"] == 0 < record["train/trainable_tensors_changed"]


def test_runs_on_one_gpu_take_turns_and_the_wait_is_not_their_time(tmp_path):
    """A local sweep starts every job at once, each seeing GPU 0: a run waits for the one training there
    (its record says how long) instead of being timed against it. CPU runs never wait."""
    import threading
    import time

    from bench.system.devices import gpu_key, turn

    assert gpu_key("cpu", None) is None
    with turn(None, tmp_path) as waited:
        assert waited == {"waited_s": 0.0}
    order, waits = [], []

    def second():
        with turn("gpu-GPU-1234", tmp_path) as waited:
            order.append("second")
            waits.append(waited["waited_s"])

    with turn("gpu-GPU-1234", tmp_path):
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.3)
        order.append("first done")
    other.join()
    assert order == ["first done", "second"] and waits[0] >= 0.25


def test_mfu_is_also_read_against_the_gpus_datasheet(tmp_path, monkeypatch):
    """Beside the measured matmul peak, a listed GPU's vendor peak in the run's precision (per process
    under data parallel); an unlisted GPU and the CPU get none."""
    from bench.measure import perf

    assert perf.spec_flops("NVIDIA H100 80GB HBM3", "bf16") == 989.4e12
    assert perf.spec_flops("NVIDIA H100 PCIe", "bf16") == 756.5e12
    assert perf.spec_flops("Tesla T4", "fp16") == 65e12 and perf.spec_flops("Tesla T4", "bf16") is None
    assert perf.spec_flops("Some Future GPU", "bf16") is None and perf.spec_flops(None, "fp32") is None
    # Whole words: an A10G is no A10, an RTX A1000 no A100, an L40 no L4; a MIG slice is no whole card.
    assert perf.spec_flops("NVIDIA A10G", "bf16") is None and perf.spec_flops("NVIDIA RTX A1000", "bf16") is None
    assert perf.spec_flops("NVIDIA L40", "bf16") == 181.05e12 and perf.spec_flops("NVIDIA L4", "bf16") == 121e12
    assert perf.spec_flops("NVIDIA H100 NVL", "bf16") == 835.5e12
    assert perf.spec_flops("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "bf16") is None
    monkeypatch.setattr(perf, "peak_flops", lambda *a: 800e12)  # as measured on a made-up H100
    out = perf.perf_metrics(
        params=10**9,
        trainable=10**6,
        tokens={"trained": 10**5},
        train_s=1.0,
        device="cuda",
        dtype=torch.bfloat16,
        cache_dir=tmp_path,
        world_size=2,
        device_name="NVIDIA H100 80GB HBM3",
    )
    achieved = (4 * 10**9 + 2 * 10**6) * 10**5
    assert out["perf/mfu"] == round(achieved / 1600e12, 5)
    assert out["perf/spec_flops_per_s"] == 2 * 989.4e12 and out["perf/mfu_spec"] == round(achieved / 1978.8e12, 5)
    cpu = perf.perf_metrics(
        params=10**6,
        trainable=10,
        tokens={"trained": 10},
        train_s=1.0,
        device="cpu",
        dtype=torch.float32,
        cache_dir=tmp_path,
    )
    assert "perf/mfu_spec" not in cpu


def test_a_run_makes_its_gpu_the_current_one(monkeypatch):
    """device=cuda:1: "cuda" must mean GPU 1 for the Trainer's device, tensors made on "cuda", the
    allocator's peaks and synchronize; torch's current device would otherwise stay GPU 0."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    Runtime(device="cpu", dtype=torch.float32, precision="fp32").activate()
    Runtime(device="cuda", dtype=torch.bfloat16, precision="bf16", index=1, gpus_visible=2).activate()
    assert chosen == [1]


def _made_up_gpus(monkeypatch, *uuids: str, name: str = "NVIDIA H100 80GB HBM3") -> None:
    """torch.cuda as a node with these GPUs shows them to a process (what `describe` reads)."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(uuids))
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: SimpleNamespace(name=name, major=9, minor=0, uuid=uuids[i])
    )


def test_jobs_on_different_gpus_of_a_node_never_wait_for_each_other(monkeypatch):
    """Under Slurm with device cgroups every job sees its own GPU as "0" (CUDA_VISIBLE_DEVICES=0): the turn
    is keyed by the GPU's UUID, read from torch's device properties, so two jobs on two GPUs of one node
    hold different locks, and two runs on one GPU the same one."""
    from bench.system.devices import describe, gpu_key

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    keys = []
    for uuid in ("8f2a61c4-0d3e-4b1a-9c55-1e7f3a2b9d01", "11c0e9b2-7a4f-4c8d-8e21-5b6d0f9a3c47"):
        _made_up_gpus(monkeypatch, uuid)
        runtime = resolve_runtime("cuda", "auto")
        assert (runtime.index, runtime.uuid) == (0, uuid) and describe("auto").uuid == uuid
        keys.append(gpu_key(runtime.device, runtime.uuid, host="node7"))
    assert keys[0] != keys[1] and keys[0] == "gpu-node7-8f2a61c4-0d3e-4b1a-9c55-1e7f3a2b9d01"
    assert gpu_key("cuda", keys[0].removeprefix("gpu-node7-"), host="node7") == keys[0]  # the same GPU: one turn
    assert gpu_key("cuda", "GPU-x", host="node7") != gpu_key("cuda", "GPU-x", host="node8")  # a shared lock folder
    with pytest.raises(BenchError, match="no UUID"):
        gpu_key("cuda", None)


def test_device_cuda_n_runs_on_gpu_n_alone_in_the_runs_own_process():
    """The Trainer takes cuda:0 and every GPU its process sees (nn.DataParallel over two or more: transformers'
    TrainingArguments._setup_devices), so device=cuda:N is honest only in a process that sees GPU N alone: the
    run's own process is started with CUDA_VISIBLE_DEVICES naming it and reads cuda:N as its one GPU."""
    from bench.system.devices import PINNED, pinned_environment

    assert pinned_environment("cuda:3", None) == {"CUDA_VISIBLE_DEVICES": "3", PINNED: "cuda:3"}
    assert pinned_environment("cuda:1", "4,6")["CUDA_VISIBLE_DEVICES"] == "6"  # N counts the GPUs left visible
    assert pinned_environment("cuda:0", "GPU-8f2a, GPU-11c0")["CUDA_VISIBLE_DEVICES"] == "GPU-8f2a"
    for request, visible in (("cuda", None), ("auto", None), ("cpu", None), ("cuda:2", "4,6"), ("cuda:0", "")):
        assert pinned_environment(request, visible) == {}  # nothing chosen, or no such GPU: refused in the run
    # The run's own process sees one GPU and takes it; it passes the one-GPU rule that the sweep's process,
    # seeing all eight, fails.
    assert choose("cuda:3", count=1, local_rank=None, pinned="cuda:3") == ("cuda", 0)
    one_gpu_per_run(1, 0, launched=False)
    with pytest.raises(BenchError, match=r"sees 8 GPUs.*`device=cuda:3`.*isolate=true"):
        one_gpu_per_run(8, 3, launched=False)
    with pytest.raises(BenchError, match="sees 1 CUDA device"):  # not pinned: cuda:3 is no GPU of one
        choose("cuda:3", count=1, local_rank=None)
    with pytest.raises(BenchError, match="no GPU 5; the run's process, given only that GPU, sees 0"):
        choose("cuda:5", count=0, local_rank=None, pinned="cuda:5")


def test_a_plan_made_in_the_sweeps_process_holds_the_pinned_run_process_view_of_its_gpu():
    """The plan is made where all eight GPUs are visible, then travels to the run's process, which sees
    GPU 3 alone as cuda:0: the plan's device is that one (its name and UUID), and it passes the one-GPU
    rule that a description from the sweep's own view (eight visible) fails."""
    from types import SimpleNamespace

    from bench.system.devices import as_pinned

    props = [SimpleNamespace(major=9, name=f"H100 #{i}", uuid=f"GPU-{i}") for i in range(8)]
    device = as_pinned("cuda:3", 8, props.__getitem__)
    assert (device.kind, device.count, device.index, device.name, device.uuid) == ("cuda", 1, 0, "H100 #3", "GPU-3")
    one_gpu_per_run(device.count, device.index, launched=False)
    with pytest.raises(BenchError, match="no GPU 8; the run's process, given only that GPU, sees 0"):
        as_pinned("cuda:8", 8, props.__getitem__)


def test_an_isolated_run_with_device_cuda_n_starts_its_process_with_that_gpu_alone(compose, tmp_path, monkeypatch):
    """Through the real runner: the run's plan, made in the sweep's process, describes the device as the run's
    pinned process will see it (on this CPU: no GPU 1, said in its record), and the sweep's own environment
    is left as it was."""
    from bench.run.runner import run

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    record = run(
        compose(
            "model=tiny",
            "device=cuda:1",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=true",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "failed"
    assert "device=cuda:1: this machine has no GPU 1; the run's process, given only that GPU, sees 0" in record["error"]
    from bench.system.devices import PINNED

    assert "CUDA_VISIBLE_DEVICES" not in os.environ and PINNED not in os.environ


def test_a_gpu_node_whose_torch_cannot_use_its_gpu_is_no_cpu_machine():
    """A CPU-only torch on a node with an NVIDIA driver, or a driver too old for torch's CUDA: torch sees no
    GPU, and every run would fall back to the CPU. Told apart from a machine without a GPU by its driver."""
    from bench.system.devices import CudaFacts, cuda_facts, unusable_gpu

    driver = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.223.02"
    assert unusable_gpu(CudaFacts(None, "2.11.0+cpu", None, False, 0)) is None  # a CPU machine
    assert unusable_gpu(CudaFacts(driver, "2.11.0+cu128", "12.8", True, 2)) is None  # a working GPU node
    cpu_torch = unusable_gpu(CudaFacts(driver, "2.11.0+cpu", None, False, 0))
    assert "NVIDIA driver (NVRM" in cpu_torch and "CPU-only build (torch.version.cuda is None)" in cpu_torch
    too_old = "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040)."
    old = unusable_gpu(CudaFacts(driver, "2.11.0+cu128", "12.8", False, 0, warning=too_old))
    assert "built for CUDA 12.8, cannot use it" in old and too_old in old and "driver older" in old
    here = cuda_facts()  # the real probe: whatever this machine is, torch's own answers
    assert (here.available, here.torch_cuda) == (torch.cuda.is_available(), torch.version.cuda)


def test_the_gpu_check_on_a_node_whose_torch_cannot_use_its_gpu_exits_with_the_cause(capsys, monkeypatch):
    from bench.studies import gpu_check
    from bench.system import devices

    facts = devices.CudaFacts("NVIDIA driver 535.104.05 (nvidia-smi)", "2.11.0+cpu", None, False, 0)
    monkeypatch.setattr(devices, "cuda_facts", lambda: facts)
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    assert "NVIDIA driver 535.104.05" in captured.err and "CPU-only build" in captured.err
    assert "no CUDA GPU" not in captured.out


def test_the_gpu_check_pins_one_gpu_of_several_and_always_trains_anew(compose):
    """On an eight-GPU node every run of the check was refused ("sees 8 GPUs"): each now asks for one GPU
    by index (the first, or the user's device=cuda:N), which its own process sees alone; and each trains
    anew, whatever the user's overrides, since an earlier record with the same config hash would be kept
    as done under a new commit's table."""
    from bench.studies import gpu_check
    from bench.system.devices import pinned_environment

    assert gpu_check.gpu_request([]) == "cuda:0" and gpu_check.gpu_request(["device=cuda:2"]) == "cuda:2"
    assert gpu_check.gpu_request(["device=cuda"]) == "cuda:0"
    with pytest.raises(BenchError, match="pick one with device=cuda:N"):
        gpu_check.gpu_request(["device=cpu"])
    for _, own in gpu_check.checks():
        cfg = compose(*gpu_check.run_overrides(own, ["force=false", "isolate=false"], False, "cuda:2"))
        assert (cfg.device, cfg.force, cfg.isolate) == ("cuda:2", True, True)
        assert pinned_environment(cfg.device, "0,1,2,3,4,5,6,7")["CUDA_VISIBLE_DEVICES"] == "2"
    eighth = Device("cuda", count=8, index=2, bf16=True, name="NVIDIA H100 80GB HBM3", uuid="GPU-8f2a")
    assert gpu_check.describe_gpu(eighth, "4,5,6,7") == {
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu/index": 2,
        "gpu/uuid": "GPU-8f2a",
        "gpu/visible": 8,
        "gpu/runs_see": "CUDA_VISIBLE_DEVICES=6",
    }
