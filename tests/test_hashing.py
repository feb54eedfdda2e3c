"""bench.config.hashing: every committed run's recorded config still hashes to the hash it was recorded
with, so that its sweep resumes and `reuse` finds it (the house moves code, never a run's identity)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.config.hashing import recorded_hash

REPO = Path(__file__).resolve().parents[1]
RUNS = sorted(
    p.parent
    for p in (REPO / "results" / "reference").glob("**/metrics.json")
    if (p.parent / "config_resolved.yaml").is_file()
)


def test_there_are_committed_runs_to_check():
    assert len(RUNS) > 150


@pytest.mark.parametrize("folder", RUNS, ids=lambda p: str(p.relative_to(REPO / "results" / "reference")))
def test_a_committed_run_hashes_as_recorded(folder, monkeypatch):
    monkeypatch.chdir(REPO)  # a pipeline's init_from is recorded relative to the repository
    record = json.loads((folder / "metrics.json").read_text())
    assert recorded_hash(OmegaConf.load(folder / "config_resolved.yaml")) == record["config_hash"]
