"""metrics.json: one flat record per run, written atomically so a crash never leaves half a file."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.system import cache, files, secrets

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "lm_eval",
    "bitsandbytes",
    "hydra-core",
    "wandb",
)
REPO = Path(__file__).resolve().parents[2]


def versions() -> dict:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[f"versions/{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"versions/{name}"] = None
    out["versions/python"] = platform.python_version()
    return out


def git_info() -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "git/commit": git("rev-parse", "HEAD"),
        "git/dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def system_info(device: str, index: int | None = None) -> dict:
    import torch  # heavy: only the run that records its machine needs it

    out = {
        "sys/device": device,
        "sys/platform": platform.platform(),
        "sys/cpu_count": os.cpu_count(),
        "sys/torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(index or 0)  # the run's own GPU, not always the first
        out.update({"sys/gpu": props.name, "sys/gpu_mem_bytes": props.total_memory, "sys/cuda": torch.version.cuda})
    return out


def write(path: Path, record: dict) -> None:
    cache.write_json(path, secrets.scrub(record), indent=2, sort_keys=True)


def write_config(path: Path, cfg) -> None:
    from omegaconf import OmegaConf

    cache.write_text(path, secrets.scrub(OmegaConf.to_yaml(cfg)))


def read(path: Path) -> dict:
    return files.read_json(path, "Delete it and rerun: the run is redone.")


def provenance(device: str = "cpu", index: int | None = None) -> dict:
    """What every file a study writes records, as a run's record does: the command that wrote it, when,
    the commit and whether the worktree was dirty, the package versions and the machine."""
    import datetime
    import shlex
    import sys

    return {
        "command": " ".join(shlex.quote(a) for a in ["python", "-m", _module(), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **git_info(),
        **versions(),
        **system_info(device, index),
    }


def _module() -> str:
    import __main__

    spec = getattr(__main__, "__spec__", None)
    return (
        spec.name.removesuffix(".__main__") if spec is not None else Path(getattr(__main__, "__file__", "python")).name
    )
