"""Shared caches (converted models, offline data, base scores, measured peaks) and result files: every
write goes through a temporary file and an atomic rename, every build of a shared entry holds a file
lock, and every published entry carries a manifest that is checked before the entry is handed out.

filelock does the locking (advisory, per path, released by the OS if the holder dies); the rename
is what makes a half-written file impossible to read. The manifest is for what the rename cannot
prevent: a disk that filled up under a copy, a file truncated or emptied by hand or by a tool, a file
removed from a model folder. No library verifies a folder against a recorded listing, hence this one.

What is checked on read, and why: every file's size, always (a stat: free, and it catches truncation,
emptying and removal, the damage seen in practice), and its SHA-256 when the file is at most
HASH_LIMIT bytes (the JSON entries, configs and tokenizers: milliseconds). Larger files (model
weights) have their hash recorded but not recomputed on every read, which would cost seconds per
gigabyte on every run; `python -m bench.system.cache verify` checks every entry's hashes in full.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from bench import BenchError

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"  # inside a folder entry; a file entry's sits beside it as <name>.manifest.json
HASH_LIMIT = 64 * 2**20
DEFAULT_ROOT = os.environ.get("RFT_BENCH_CACHE", "~/.cache/rft-bench")  # as conf/config.yaml's cache_dir


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
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data does
    except BaseException:  # a full disk, or a signal: the earlier file stays as it was, no debris
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def write_json(path: Path, data, **kwargs) -> None:
    write_text(path, json.dumps(data, default=str, **kwargs) + "\n")


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a fully written folder into place, with its manifest; an older copy is removed first."""
    seal(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def seal(folder: Path) -> None:
    """(Re)write a folder entry's manifest from what it holds now (after adding a file to it)."""
    _write_manifest(Path(folder), _listing(Path(folder)))


def publish_json(path: Path, data, **kwargs) -> None:
    """Write a file entry and then its manifest (a crash between the two leaves an entry that the next
    reader rebuilds: never one that is trusted without its manifest)."""
    path = Path(path)
    write_json(path, data, **kwargs)
    _write_manifest(path, _listing(path))


def _manifest_path(path: Path) -> Path:
    path = Path(path)
    return path / MANIFEST if path.is_dir() else path.with_name(f"{path.name}.manifest.json")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    return [path]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listing(path: Path) -> dict:
    base = path if path.is_dir() else path.parent
    return {"files": {str(f.relative_to(base)): {"size": f.stat().st_size, "sha256": _sha256(f)} for f in _files(path)}}


def _write_manifest(path: Path, listing: dict) -> None:
    write_json(_manifest_path(path), listing, indent=1, sort_keys=True)


def problem(path: Path, full: bool = False) -> str | None:
    """What is wrong with the entry at `path` against its manifest, or None when it checks out.

    `full` recomputes every hash (the verify command); otherwise only files up to HASH_LIMIT.
    """
    path = Path(path)
    if not path.exists():
        return "it is missing"
    manifest = _manifest_path(path)
    if not manifest.is_file():
        return f"it has no manifest ({manifest.name}): written before manifests, or cut off while being published"
    try:
        listed = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"its manifest {manifest} is unreadable ({err})"
    base = path if path.is_dir() else path.parent
    for name, want in listed.items():
        f = base / name
        if not f.is_file():
            return f"{name} was removed"
        size = f.stat().st_size
        if size != want["size"]:
            what = "emptied" if size == 0 else "truncated" if size < want["size"] else "grown"
            return f"{name} is {size:,} bytes, its manifest says {want['size']:,} ({what})"
        if (full or size <= HASH_LIMIT) and _sha256(f) != want["sha256"]:
            return f"{name}'s content differs from its manifest (same size, different SHA-256)"
    return None


def usable(path: Path, what: str) -> bool:
    """Under the entry's build lock: True when a verified entry is there to read. A damaged one is
    removed, with a warning naming it and what was wrong, so that the caller rebuilds it; where it
    cannot be removed, the run is refused with the path to delete."""
    path = Path(path)
    manifest = _manifest_path(path)
    if not path.exists() and not manifest.exists():
        return False  # never built: nothing to say
    wrong = problem(path)
    if wrong is None:
        return True
    folder = path.is_dir()
    try:
        remove(path)
    except OSError as err:
        also = "" if folder else f" and {manifest} beside it"
        raise BenchError(
            f"The cached {what} {path} is damaged ({wrong}) and could not be removed to rebuild it ({err}). "
            f"Delete {path}{also}, then rerun: it is rebuilt."
        ) from err
    log.warning("cache: %s %s is damaged (%s); rebuilding it", what, path, wrong)
    return False


def require(path: Path, what: str, fix: str) -> None:
    """For entries nothing can rebuild (a run's saved adapter): refuse a damaged one by name."""
    path = Path(path)
    if not _manifest_path(path).exists():
        return  # saved before manifests, or by another tool: nothing to check against
    wrong = problem(path)
    if wrong is not None:
        raise BenchError(f"The {what} {path} is damaged ({wrong}); nothing can rebuild it here. {fix}")


def remove(path: Path) -> None:
    """An entry and its manifest."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        _manifest_path(path).unlink(missing_ok=True)


def entries(root: Path) -> list[Path]:
    """Every entry with a manifest below a cache root."""
    root = Path(root).expanduser()
    folders = [m.parent for m in root.rglob(MANIFEST)]
    files = [m.with_name(m.name.removesuffix(".manifest.json")) for m in root.rglob("?*.manifest.json")]
    return sorted(folders + files)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.system.cache verify [root]`: every entry's sizes and full hashes; damaged ones listed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.system.cache", description=main.__doc__)
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("root", nargs="?", default=DEFAULT_ROOT, help=f"cache root (default {DEFAULT_ROOT})")
    args = parser.parse_args(argv)
    bad = 0
    for entry in entries(Path(args.root)):
        wrong = problem(entry, full=True)
        bad += wrong is not None
        print(f"{'DAMAGED' if wrong else 'ok     '} {entry}" + (f": {wrong}" if wrong else ""))
    print(f"{bad} damaged; a run rebuilds a damaged entry on its next read, or delete it by hand.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
