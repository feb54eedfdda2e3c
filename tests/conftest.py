from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
# The tiny model's architecture (conf/model/tiny.yaml), for assertions that depend on its shapes.
TINY = yaml.safe_load((REPO / "conf" / "model" / "tiny.yaml").read_text())["arch"]
TINY_PARAMS = 3_219_776  # its weights: the 49,152 x 64 tied embedding, 2 layers and the final norm
GSM8K_DIR = Path(os.environ.get("RFT_BENCH_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))


# `make test` runs the suite on pytest-xdist workers: each gets an equal share of the cores for torch and
# for every process it starts, since processes that each use every core oversubscribe them and run far
# slower than their share. Set before anything imports torch (a user's own setting wins).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // WORKERS)))


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    # One built or converted model and one set of built data for the whole session, shared by its xdist
    # workers (the cache's locks make one of them build each entry while the others wait, as for the
    # jobs of a sweep); a user's cache stays untouched unless RFT_BENCH_CACHE points the tests at it on
    # purpose (it makes reruns faster).
    if "RFT_BENCH_CACHE" not in os.environ:
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if WORKERS > 1 else base  # xdist: <session>/popen-gw0, <session>/popen-gw1
        (shared / "cache").mkdir(exist_ok=True)
        os.environ["RFT_BENCH_CACHE"] = str(shared / "cache")
    yield


@pytest.fixture
def compose():
    """The real root config with overrides, outputs in a fresh folder."""
    from bench.config.compose import compose as _compose

    def make(*overrides: str, output_dir: Path | None = None):
        cfg = _compose(list(overrides))
        if output_dir is not None:
            cfg.output_dir = str(output_dir)
        return cfg

    return make


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    if not (GSM8K_DIR / "test.jsonl").exists():
        pytest.fail(f"GSM8K jsonl files not found in {GSM8K_DIR}; set RFT_BENCH_GSM8K_DIR (CI: ../shared/data/gsm8k)")
    return GSM8K_DIR


# ---- methods the installed TRL has ----------------------------------------------------------------------
# The suite runs on either lock: on TRL 1.16 (LOCK=current) the tests of PPO and BCO are skipped, saying why.


def unavailable(name: str) -> str | None:
    """Why the installed TRL cannot run conf/method/<name>.yaml (None: it can)."""
    from omegaconf import OmegaConf

    import methods

    return methods.why_unavailable(OmegaConf.load(REPO / "conf" / "method" / f"{name}.yaml"))


def on_this_trl(names) -> list[str]:
    """The methods among `names` that the installed TRL can train."""
    return [n for n in names if unavailable(n) is None]


def needs(*names: str):
    """Skip a test of these methods where the installed TRL lacks one of them."""
    why = next((w for n in names if (w := unavailable(n)) is not None), None)
    return pytest.mark.skipif(why is not None, reason=why or "")


def method_params(names) -> list:
    """`names` as parameters, each skipped where the installed TRL lacks it."""
    return [pytest.param(n, marks=needs(n)) for n in names]
