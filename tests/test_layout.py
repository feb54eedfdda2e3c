"""The layout is the architecture: bench/'s folders are its layers, and imports run one way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_top_level_is_a_few_layers():
    entries = sorted(p.name for p in (REPO / "bench").iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries
    for folder in (p for p in (REPO / "bench").iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = folder / "__init__.py"
        assert init.is_file() and init.read_text().startswith('"""'), f"{folder.name}/ says what it holds"


def test_import_contracts_hold():
    """pyproject.toml's layers (studies > run > report > recipe > config > methods > tasks > measure >
    records > system; estimate sits between recipe and config), and no circles between siblings, as import-linter checks them."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency: make setup installs it"
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Layers run one way KEPT" in proc.stdout and "No import circles between siblings KEPT" in proc.stdout


def test_the_layout_page_names_every_folder():
    layout = (REPO / "docs" / "layout.md").read_text()
    for folder in (p for p in (REPO / "bench").iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert f"bench/{folder.name}/" in layout, folder.name
