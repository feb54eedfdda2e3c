"""Where and in which precision a run computes: the device decisions of bench.system.devices, resolved
once into what torch and the Trainer take."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.system import devices


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a run computes (bench.system.devices decides both)."""

    device: str  # "cuda" or "cpu"
    dtype: torch.dtype
    precision: str  # "bf16" | "fp16" | "fp32"
    index: int | None = None  # the CUDA device's index
    gpus_visible: int = 0  # CUDA devices this process sees
    name: str | None = None  # the GPU's name (what the config hash tells GPUs apart by)
    uuid: str | None = None  # the GPU's UUID (what names it across processes and jobs: its turn)

    @property
    def placement(self) -> str:
        """Where weights go: `cuda:N` (accelerate compares device maps with indexed devices) or `cpu`."""
        return "cpu" if self.device == "cpu" else f"cuda:{self.index or 0}"

    def activate(self) -> None:
        """Make the run's GPU the current one, so that "cuda" means it everywhere: the Trainer's device,
        tensors made with device="cuda", the allocator's peaks, synchronize."""
        if self.device == "cuda":
            torch.cuda.set_device(self.index or 0)

    @property
    def trainer_flags(self) -> dict:
        # TRL configs default to bf16=True; on CPU that made DPO ~25x slower, so always say it.
        return {
            "bf16": self.precision == "bf16",
            "fp16": self.precision == "fp16",
            "use_cpu": self.device == "cpu",
        }


def resolve_runtime(device: str = "auto", precision: str = "auto", described: devices.Device | None = None) -> Runtime:
    """The run's device and precision from its settings; `described` stands in for this machine (tests)."""
    d = described or devices.describe(device)
    chosen = devices.precision(d, precision)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return Runtime(
        device=d.kind,
        dtype=dtypes[chosen],
        precision=chosen,
        index=d.index,
        gpus_visible=d.count,
        name=d.name if d.kind == "cuda" else None,
        uuid=d.uuid,
    )
