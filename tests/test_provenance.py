"""Every committed result says where it came from, and names no folder of the machine that made it."""

from __future__ import annotations

import subprocess
import sys

from bench.records.store import provenance
from tests.conftest import REPO


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_every_reference_folder_has_a_current_provenance_file():
    """PROVENANCE.md is written from the folder's own files: missing or stale fails."""
    proc = _script("provenance.py", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = [p for p in (REPO / "results" / "reference").iterdir() if p.is_dir()]
    assert len(folders) >= 10 and all((f / "PROVENANCE.md").is_file() for f in folders)
    text = (REPO / "results/reference/headline-smollm2-arithmetic-cpu/PROVENANCE.md").read_text()
    for part in (
        "**Commit**",
        "**Worktree dirty**",
        "**sys/platform**",
        "**Versions**",
        "**Date**",
        "python -m bench -m experiment=headline",
    ):
        assert part in text


def test_no_committed_result_names_a_machine_path():
    proc = _script("relative-paths.py", "--check")
    assert proc.returncode == 0, "absolute paths in:\n" + proc.stdout


def test_what_a_study_records_beside_its_figures():
    stamp = provenance("cpu")
    assert {
        "command",
        "date",
        "git/commit",
        "git/dirty",
        "versions/torch",
        "versions/trl",
        "sys/platform",
        "sys/cpu_count",
    } <= set(stamp)
    assert stamp["command"].startswith("python -m ")


def test_the_records_page_is_generated_from_the_schema():
    proc = _script("records-doc.py", "--check")
    assert proc.returncode == 0, proc.stderr
