"""Data-parallel runs under `accelerate launch` (or torchrun): which process this is, and the job's
totals across processes.

accelerate starts one `python -m bench ...` per process with RANK/WORLD_SIZE in the environment; the
TRL trainer inside each joins the process group and trains its shard of every batch. The harness on
top must then act once per job, not once per process: only rank 0 writes the run's records, saves
the adapter, evaluates and logs to W&B, and the memory and throughput it records are the whole job's,
gathered from every process. Nothing here starts processes or wraps models (accelerate does).
"""

from __future__ import annotations

import os

from bench import BenchError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def gather(obj) -> list:
    """`obj` from every process, in rank order ([obj] in a single process).

    Called after training, when the trainer has joined the process group; gloo on CPU, the trainer's
    own backend on GPU (all_gather_object moves through the current CUDA device there).
    """
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def require_shared_dir(hydra_cfg) -> None:
    """Refuse a data-parallel run without an explicit output folder, before any work.

    The default folder names carry the start time (`${now:...}`), which each process resolves on its
    own: two processes started a second apart would write two run folders. No launcher variable is
    shared and unique per launch, so the user names the folder.
    """
    key = "hydra.sweep.dir" if hydra_cfg.mode.name == "MULTIRUN" else "hydra.run.dir"
    if not any(o.split("=", 1)[0].lstrip("+") == key for o in hydra_cfg.overrides.hydra):
        raise BenchError(
            f"This is one of {world_size()} data-parallel processes (WORLD_SIZE={world_size()}), and they "
            f"must share one run folder, but the default one is named by each process's own start time. "
            f"Add {key}=<folder> to the command, e.g. `accelerate launch --multi_gpu "
            f"--num_processes {world_size()} -m bench method=dpo {key}=results/runs/dpo-dp{world_size()}`."
        )
