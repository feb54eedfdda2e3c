from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GSM8K_DIR = Path(os.environ.get("RFT_BENCH_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    # One converted model and one set of built data for the whole session; a user's cache stays untouched
    # unless RFT_BENCH_CACHE points the tests at it on purpose (it makes reruns faster).
    if "RFT_BENCH_CACHE" not in os.environ:
        os.environ["RFT_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def compose():
    """The real root config with overrides, outputs in a fresh folder."""
    from bench.config import compose as _compose

    def make(*overrides: str, output_dir: Path | None = None):
        cfg = _compose(list(overrides))
        if output_dir is not None:
            cfg.output_dir = str(output_dir)
        return cfg

    return make


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    if not (GSM8K_DIR / "test.jsonl").exists():
        pytest.fail(
            f"GSM8K jsonl files not found in {GSM8K_DIR}; set RFT_BENCH_GSM8K_DIR (CI: ../shared/data/gsm8k)"
        )
    return GSM8K_DIR
