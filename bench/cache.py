"""Shared caches (converted models, offline data, base scores) and result files: every write goes
through a temporary file and an atomic rename, and every build of a shared entry holds a file lock,
so parallel jobs never corrupt an entry or build the same one twice.

filelock does the locking (advisory, per path, released by the OS if the holder dies); the rename
is what makes a half-written file impossible to read.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def build_lock(path: Path):
    """Hold `<path>.lock` while checking for and building `path`: one job builds, the others wait."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())  # the rename must not reach the disk before the data does
    tmp.replace(path)


def write_json(path: Path, data, **kwargs) -> None:
    write_text(path, json.dumps(data, default=str, **kwargs) + "\n")


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a fully written folder into place; an older copy of it is removed first."""
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
