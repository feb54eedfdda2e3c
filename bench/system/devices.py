"""Every device decision as a plain function of a device description: which device a run computes on
(and so where its weights are placed: `Runtime.placement`), in which precision, how many GPUs it may see,
which GPU a run's own process is pinned to, and whether a machine's GPU is usable by this torch at all. The
functions that ask the machine are `describe` and `cuda_facts`; everything else takes a `Device` or `CudaFacts`,
so CPU tests can hand it a made-up GPU (an H100, a T4 without bf16, eight visible GPUs, a driver that this
torch cannot use) and check the decision a first GPU run would take.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

log = logging.getLogger(__name__)

_REQUEST = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
# Set, with CUDA_VISIBLE_DEVICES, in the environment of a run's own process started for `device=cuda:N`
# (`pinned_environment`): that process sees GPU N alone, as its cuda:0, and reads the request as that GPU.
PINNED = "RFT_BENCH_PINNED_DEVICE"


@dataclass(frozen=True)
class Device:
    """What a run computes on, as far as its decisions go."""

    kind: str  # "cpu" | "cuda"
    count: int = 0  # CUDA devices visible to this process
    index: int | None = None  # the CUDA device this process uses
    bf16: bool = False  # native bf16 (compute capability 8.0 on: A100, H100, L4, RTX 30xx); T4 and V100 lack it
    name: str = "cpu"
    uuid: str | None = None  # the GPU's own UUID (torch's device properties): the same in every process and job


def parse(requested: str) -> tuple[str, int | None]:
    """`device=` as written: auto, cpu, cuda or cuda:N (anything else is refused, never read as CPU)."""
    match = _REQUEST.match(str(requested).strip())
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise BenchError(f"device={requested!r} is not one of auto, cpu, cuda, cuda:N (N: a GPU's index).")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def choose(requested: str, count: int, local_rank: int | None, pinned: str | None = None) -> tuple[str, int | None]:
    """(kind, index) for a request, given how many GPUs this process sees and its launcher's local rank:
    under a launcher each process takes the GPU of its local rank, as accelerate and torchrun expect.
    `pinned`: the request this process was started for with only its GPU visible (`PINNED`), so that
    `cuda:N` is the one GPU it sees."""
    kind, index = parse(requested)
    if pinned == requested and index is not None and local_rank is None:
        if count != 1:  # CUDA_VISIBLE_DEVICES named no GPU that exists (an index past the last)
            raise BenchError(
                f"device={requested}: this machine has no GPU {index}; the run's process, given "
                f"only that GPU, sees {count}."
            )
        return "cuda", 0
    if kind == "auto":
        kind = "cuda" if count else "cpu"
    if kind == "cpu":
        return "cpu", None
    if count == 0:
        raise BenchError(
            f"device={requested} was requested but torch sees no CUDA device; use device=auto or device=cpu."
        )
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
    kind, index = choose(requested, count, int(rank) if rank is not None else None, os.environ.get(PINNED))
    if kind == "cpu":
        return Device("cpu")
    props = torch.cuda.get_device_properties(index)
    return Device("cuda", count, index, bf16=props.major >= 8, name=props.name, uuid=str(props.uuid))


def describe_run(requested: str, isolated: bool) -> Device:
    """The device a run computes on, described from this process before the run's own starts: where that
    process is started pinned (`pinned_environment`), GPU N as it will see it, its one GPU; else
    `describe`. The plan is made here and travels to the run's process, so it holds that process's view."""
    if not isolated or not pinned_environment(requested, os.environ.get("CUDA_VISIBLE_DEVICES")):
        return describe(requested)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return as_pinned(requested, count, torch.cuda.get_device_properties)


def as_pinned(requested: str, count: int, properties) -> Device:
    """GPU N of the `count` this process sees, as a process started with it alone sees it (`cuda:0`);
    `properties(index)`: torch's device properties. A GPU that is not there is refused by name."""
    _, index = parse(requested)
    seen = 1 if index is not None and index < count else 0
    choose(requested, seen, None, pinned=requested)
    props = properties(index)
    return Device("cuda", 1, 0, bf16=props.major >= 8, name=props.name, uuid=str(props.uuid))


def pinned_environment(requested: str, visible: str | None) -> dict[str, str]:
    """What a run's own process needs in its environment so that `device=cuda:N` runs on GPU N alone:
    CUDA_VISIBLE_DEVICES naming only that GPU (`visible`: this process's own CUDA_VISIBLE_DEVICES, None
    when unset; N counts the GPUs it leaves visible, as torch does), and `PINNED`, so that the process
    reads cuda:N as the one GPU it sees. The Trainer takes cuda:0 and every GPU its process sees (two or
    more: nn.DataParallel), so a process that sees several cannot be held to GPU N; and CUDA reads
    CUDA_VISIBLE_DEVICES once, so it must be set before the process starts. Empty for any other request,
    and for an index beyond the GPUs left visible (the run then refuses it by name)."""
    kind, index = parse(requested)
    if kind != "cuda" or index is None:
        return {}
    if visible is None:
        return {"CUDA_VISIBLE_DEVICES": str(index), PINNED: requested}
    names = [v.strip() for v in visible.split(",") if v.strip()]
    if index >= len(names):
        return {}
    return {"CUDA_VISIBLE_DEVICES": names[index], PINNED: requested}


@contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """This process's environment with `changes` while a child process starts (a spawned process copies
    it then), restored after. This process's own CUDA has read its environment already."""
    before = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class CudaFacts:
    """What decides whether this machine's GPU is usable by this torch (`cuda_facts` reads them)."""

    driver: str | None  # the NVIDIA driver (/proc/driver/nvidia/version, or nvidia-smi's version); None: none
    torch_version: str
    torch_cuda: str | None  # torch.version.cuda: None for a CPU-only build of torch
    available: bool  # torch.cuda.is_available()
    count: int  # torch.cuda.device_count() where available
    warning: str | None = None  # what torch warned while it looked (a driver too old for its CUDA, ...)


def unusable_gpu(facts: CudaFacts) -> str | None:
    """Why a machine with an NVIDIA driver cannot compute on its GPU with this torch, in one paragraph;
    None where torch can use a GPU, or where there is no driver (a CPU machine). Without this a GPU node
    with a CPU-only torch, or a driver older than torch's CUDA, would run everything on its CPU."""
    if facts.driver is None or (facts.available and facts.count > 0):
        return None
    if facts.torch_cuda is None:
        return (
            f"this machine has an NVIDIA driver ({facts.driver}) but torch {facts.torch_version} is a CPU-only "
            "build (torch.version.cuda is None), so no run could use the GPU. Install a CUDA build of torch "
            "(the node's own, or a wheel for its CUDA from download.pytorch.org) beside the harness; "
            "docs/scale-out.md."
        )
    said = f" torch said: {facts.warning}" if facts.warning else ""
    return (
        f"this machine has an NVIDIA driver ({facts.driver}) but torch {facts.torch_version}, built for CUDA "
        f"{facts.torch_cuda}, cannot use it (torch.cuda.is_available() is False).{said} A driver older than "
        "the CUDA torch was built for is the usual cause: use a torch built for an older CUDA, or update the "
        "driver; check `nvidia-smi` and that the job was given a GPU."
    )


def cuda_facts() -> CudaFacts:
    """This machine's `CudaFacts`: the driver from /proc (or nvidia-smi), the rest from torch."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    said = [
        str(w.message).strip() for w in caught if "cuda" in str(w.message).lower() or "driver" in str(w.message).lower()
    ]
    return CudaFacts(
        driver=_driver(),
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        available=available,
        count=count,
        warning=" ".join(said) or None,
    )


def _driver() -> str | None:
    """The NVIDIA driver's version line where this process was given a GPU, else None. The kernel module's
    /proc file is the host's: a CPU-only container or a job on a GPU host without a GPU allocated sees it
    too, so it counts only beside a GPU device node (/dev/nvidia0, ...) that this process can see."""
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return None
    proc = Path("/proc/driver/nvidia/version")
    if proc.is_file():
        first = proc.read_text(errors="replace").strip().splitlines()
        return first[0].strip() if first else "NVIDIA driver"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no nvidia-smi, or it hung: no driver to speak of
        return None
    version = out.stdout.strip().splitlines()
    return f"NVIDIA driver {version[0].strip()} (nvidia-smi)" if out.returncode == 0 and version else None


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
    for PPO's own loop, and memory read on one GPU only. One GPU per run (`device=cuda:N` in its own
    process, or CUDA_VISIBLE_DEVICES), or data parallel under a launcher that gives each process its own."""
    if gpus_visible > 1 and not launched:
        raise BenchError(
            f"This run sees {gpus_visible} GPUs and no launcher: the trainer would spread it over all of them "
            f"with nn.DataParallel, unlike the other methods' runs. Give it one: `device=cuda:{index or 0}` "
            "(with isolate=true, the default, the run's own process then sees that GPU alone), or "
            "CUDA_VISIBLE_DEVICES naming one GPU; or data parallel, one process per GPU: `accelerate launch "
            f"--multi_gpu --num_processes {gpus_visible} -m bench ...`."
        )


def gpu_key(kind: str, uuid: str | None, host: str | None = None) -> str | None:
    """What names a physical GPU across processes and jobs: its UUID (`Device.uuid`). Not its index, nor
    its CUDA_VISIBLE_DEVICES entry: under Slurm with device cgroups every job sees its own GPU as "0", so
    jobs on different GPUs would share one turn. The host stays in the name, though a UUID is unique
    alone, so that a lock folder on a shared filesystem says which node each lock is for. None on CPU."""
    if kind != "cuda":
        return None
    if not uuid:
        raise BenchError("a CUDA run's GPU has no UUID to take its turn by (torch's device properties gave none).")
    host = os.uname().nodename if host is None else host
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"gpu-{host}-{uuid}")


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
