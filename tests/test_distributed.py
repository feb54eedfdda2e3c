"""Data parallel: one run trained by two processes under `accelerate launch` on CPU (gloo), the
harness acting once per job: one record, one adapter, one evaluation, memory and tokens summed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.records.schema import MEMORY_PARTS
from tests.conftest import REPO

# The launcher's own flags, so no `accelerate config` file is needed (and none on the user's machine
# changes what the test runs). `--multi_gpu` is accelerate's torchrun path, which on a machine without
# GPUs joins the processes with gloo on CPU; its `--cpu` multi-process path needs MPI instead.
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_machines",
    "1",
    "--num_processes",
    "2",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "-m",
    "bench",
]


def launch(*overrides: str, cwd=REPO, timeout: int = 900, cache=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RFT_BENCH_CACHE": str(cache)} if cache else None
    return subprocess.run([*LAUNCH, *overrides], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_data_parallel_run_needs_a_named_folder(tmp_path):
    """Each process would name its own folder from its start time: refused before any work."""
    # From an empty folder: Hydra creates the default run folders (relative to the working directory)
    # before the harness can refuse, and they must not land in the repository's results/.
    proc = launch("method=dpo", "debug=smoke", "logger=none", cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "must share one run folder" in proc.stderr and "hydra.run.dir=" in proc.stderr
    assert not list(tmp_path.glob("results/runs/*/metrics.json"))  # no run started


@pytest.mark.slow
def test_two_process_run_records_the_whole_job(tmp_path):
    """Online DPO (generation, a judge's rewards, the training step: every part of an online method) on two
    processes, on the tiny model: the job's mechanics are the subject. (GRPO would learn nothing there:
    a random model's samples all earn the same reward.)

    One method, not one per family, to keep the suite short: the offline methods' data build is one
    locked cache entry, the same code as the model's, and tests/test_reliability.py races it."""
    out = tmp_path / "run"
    # From an empty cache: both processes reach the model's build together, and whichever takes the
    # lock must write a complete entry (once the process group is up, transformers saves weights from
    # rank 0 only; rank 1 once cached a model-less folder).
    cache = tmp_path / "cache"
    proc = launch(
        "method=online_dpo",
        "model=tiny",
        "debug=smoke",
        "eval.limit=4",
        "logger=none",
        f"hydra.run.dir={out}",
        cache=cache,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = (out / "run.log").read_text()
    assert log.count("Building tiny-llama") == 1  # one process built it, the other waited and read it
    (model,) = [p for p in (cache / "models").iterdir() if p.is_dir()]  # beside it: only its .lock
    assert (model / "model.safetensors").exists() and (model / "config.json").exists()
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "success", record.get("traceback") or record.get("error")
    assert record["dist/world_size"] == 2
    per_rank = record["dist/peak_mem_per_rank_bytes"]
    # Both processes report their own peak (torch's runtime alone is ~0.6 GiB); the job's peak is their sum.
    assert len(per_rank) == 2 and min(per_rank) > 500e6
    assert record["sys/peak_mem_bytes"] == sum(per_rank)
    parts = [record.get(k, 0) for k in (*MEMORY_PARTS, "mem/unaccounted_bytes")]  # the parts, not the maxima
    assert sum(parts) == record["sys/peak_mem_bytes"]
    # Two shards of batch 4 per step: the job's samples, counted once per process.
    assert record["train/samples_per_s"] * record["train/wall_s"] == pytest.approx(
        record["train/steps"] * 4 * 2, rel=1e-3
    )
    assert record["params/trainable"] == record["params/audit_exact"]
    assert record["train/trainable_tensors_changed"] == record["train/trainable_tensors"] > 0
    assert record["perf/mfu"] > 0 and "eval/accuracy" in record
    # One job, one adapter and one record: no second run folder, no per-rank leftovers.
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["adapter", "metrics.json", "config_resolved.yaml", "train_log.json", "run.log", "trainer"]
    )  # trainer/: TRL's own output_dir, as in any run
