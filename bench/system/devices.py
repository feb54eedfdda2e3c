"""Every device decision as a plain function of a device description: which device a run computes on
(and so where its weights are placed: `Runtime.placement`), in which precision, and how many GPUs it may see. The one function that asks
torch is `describe`; everything else takes a `Device`, so CPU tests can hand it a made-up GPU (an H100,
a T4 without bf16, eight visible GPUs) and check the decision a first GPU run would take.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

log = logging.getLogger(__name__)

_REQUEST = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Device:
    """What a run computes on, as far as its decisions go."""

    kind: str  # "cpu" | "cuda"
    count: int = 0  # CUDA devices visible to this process
    index: int | None = None  # the CUDA device this process uses
    bf16: bool = False  # native bf16 (compute capability 8.0 on: A100, H100, L4, RTX 30xx); T4 and V100 lack it
    name: str = "cpu"


def parse(requested: str) -> tuple[str, int | None]:
    """`device=` as written: auto, cpu, cuda or cuda:N (anything else is refused, never read as CPU)."""
    match = _REQUEST.match(str(requested).strip())
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise BenchError(f"device={requested!r} is not one of auto, cpu, cuda, cuda:N (N: a GPU's index).")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def choose(requested: str, count: int, local_rank: int | None) -> tuple[str, int | None]:
    """(kind, index) for a request, given how many GPUs this process sees and its launcher's local rank:
    under a launcher each process takes the GPU of its local rank, as accelerate and torchrun expect."""
    kind, index = parse(requested)
    if kind == "auto":
        kind = "cuda" if count else "cpu"
    if kind == "cpu":
        return "cpu", None
    if count == 0:
        raise BenchError(f"device={requested} was requested but torch sees no CUDA device; use device=auto or device=cpu.")
    if index is not None and local_rank is not None:
        raise BenchError(
            f"device={requested} under a launcher: each process takes the GPU of its local rank, and every "
            "rank would share this one. Use device=cuda (or auto); CUDA_VISIBLE_DEVICES picks the GPUs."
        )
    if index is None:
        index = local_rank if local_rank is not None else 0
    if index >= count:
        raise BenchError(f"device={requested}: this process sees {count} CUDA device(s), indices 0 to {count - 1}.")
    return "cuda", index


def describe(requested: str = "auto") -> Device:
    """The device this process would run `requested` on. Reads torch (and CUDA's properties) only here."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    rank = os.environ.get("LOCAL_RANK")
    kind, index = choose(requested, count, int(rank) if rank is not None else None)
    if kind == "cpu":
        return Device("cpu")
    major, _ = torch.cuda.get_device_capability(index)
    return Device("cuda", count, index, bf16=major >= 8, name=torch.cuda.get_device_name(index))


def precision(device: Device, requested: str) -> str:
    """auto: bf16 where the GPU has it natively, fp16 on older GPUs (emulated bf16 is slow or fails
    there), fp32 on CPU (bf16 matmuls run ~25x slower on this project's CPU). An explicit bf16 on a GPU
    without it is refused."""
    if requested == "auto":
        if device.kind == "cpu":
            return "fp32"
        return "bf16" if device.bf16 else "fp16"
    if requested not in ("bf16", "fp16", "fp32"):
        raise BenchError(f"precision={requested!r} is not one of auto, bf16, fp16, fp32.")
    if requested == "bf16" and device.kind == "cuda" and not device.bf16:
        raise BenchError(
            f"precision=bf16: {device.name} has no native bf16 (compute capability below 8.0); use "
            "precision=fp16 (or auto, which picks it there) or fp32."
        )
    return requested


def trains_in_fp32(precision_name: str, full_finetune: bool) -> bool:
    """Whether the weights load in fp32 whatever the run's precision: full fine-tuning trains every
    weight, and under bf16 or fp16 it must keep fp32 master weights (the trainer's autocast computes in
    the low precision): a weight kept in bf16 loses every update below its spacing (~0.4% of its value),
    so at 1e-5 most steps would change nothing. LoRA's frozen base stays in the run's precision; its
    adapter is trained in fp32 by peft."""
    return full_finetune and precision_name != "fp32"


def one_gpu_per_run(gpus_visible: int, index: int | None, launched: bool) -> None:
    """Refuse a run that sees several GPUs without a launcher: the Hugging Face Trainer would take every
    visible GPU and wrap the model in `nn.DataParallel`, silently: a larger batch for some methods and not
    for PPO's own loop, and memory read on one GPU only. One GPU per run (CUDA_VISIBLE_DEVICES), or data
    parallel under a launcher that gives each process its own."""
    if gpus_visible > 1 and not launched:
        raise BenchError(
            f"This run sees {gpus_visible} GPUs and no launcher: the trainer would spread it over all of them "
            f"with nn.DataParallel, unlike the other methods' runs. Give it one: `CUDA_VISIBLE_DEVICES="
            f"{index or 0} python -m bench ...`; or data parallel, one process per GPU: `accelerate launch "
            f"--multi_gpu --num_processes {gpus_visible} -m bench ...`."
        )


def gpu_key(kind: str, index: int | None, visible: str | None = None) -> str | None:
    """What names a physical GPU across the processes of one machine, without a CUDA call (a job waiting
    for its turn should hold as little of the GPU as it can): the host and the GPU as CUDA_VISIBLE_DEVICES names it
    (an index or a UUID), since it renumbers the GPUs each process sees. None on CPU."""
    if kind != "cuda":
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    names = [v.strip() for v in visible.split(",")] if visible else []
    physical = names[index or 0] if index is not None and index < len(names) else str(index or 0)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"gpu-{os.uname().nodename}-{physical}")


@contextmanager
def turn(key: str | None, lock_dir: Path) -> Iterator[dict]:
    """Hold the GPU named `key` for one run's training and scoring; another run on it waits its turn.
    A local sweep (hydra/launcher=local: submitit starts every job at once, each seeing GPU 0) would
    otherwise time and measure every run against the others. Yields {"waited_s": ...}, the wait, which
    the run's times leave out. Released by the OS if the process dies (filelock's flock). No-op on CPU
    (key None). Data-parallel jobs do not take turns: ranks locking their GPUs one by one could each
    hold one that the other job needs."""
    if key is None:
        yield {"waited_s": 0.0}
        return
    from filelock import FileLock

    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / f"{key}.lock"))
    started = time.perf_counter()
    try:
        lock.acquire(timeout=0)
    except TimeoutError:
        log.info("waiting for %s: another run is training or scoring on it", key)
        lock.acquire()
    try:
        yield {"waited_s": round(time.perf_counter() - started, 3)}
    finally:
        lock.release()
