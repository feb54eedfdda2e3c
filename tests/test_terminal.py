"""What the terminal tells a newcomer: where each run's folder is, where a failed run's traceback is, and
no library's noise (bench.system.console). The sweep's last line is tested with the report
(tests/test_report.py), and all of it on a real sweep's output in tests/test_smoke.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from bench.system import console
from tests.conftest import REPO

RECORD = {"status": "success", "sys/peak_mem_bytes": 2**30, "time/total_s": 75.0, "eval/accuracy": 0.25}


def test_a_run_end_line_names_its_folder_as_the_user_would_type_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "sweeps" / "s" / "0_grpo_seed0"
    assert console.ended("run 1/2", RECORD, folder) == (
        "run 1/2: success · peak 1.00 GiB · 1m15s · accuracy 0.250 · results/sweeps/s/0_grpo_seed0"
    )
    elsewhere = tmp_path.parent / "other" / "run"  # outside the working directory: the whole path
    assert console.ended("run", RECORD, elsewhere).endswith(f"· {elsewhere}")


def test_a_failed_run_line_says_where_its_traceback_and_log_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "1_dpo_seed0"
    folder.mkdir()
    record = {"status": "failed", "error": "TypeError: boom\nsecond line", "traceback": "Traceback (most recent...)"}
    assert console.ended("run 2/2", record, folder) == (
        'run 2/2: failed: TypeError: boom · traceback: 1_dpo_seed0/metrics.json, key "traceback"'
    )
    (folder / "run.log").write_text("")
    assert console.ended("run 2/2", record, folder).endswith(
        'traceback: 1_dpo_seed0/metrics.json, key "traceback" · log: 1_dpo_seed0/run.log'
    )
    # A BenchError's message is the whole story (no traceback): the line names the record and the log.
    told = {"status": "failed", "error": "task.data_dir=x: train.jsonl is empty"}
    assert console.ended("run", told, folder) == (
        "run: failed: task.data_dir=x: train.jsonl is empty · record: 1_dpo_seed0/metrics.json"
        " · log: 1_dpo_seed0/run.log"
    )


NOISE = "gemm_4bit_forward"  # bitsandbytes: "Failed to load CPU gemm_4bit_forward from kernels-community: ..."


def test_bitsandbytes_kernels_warning_goes_to_run_log_and_never_bare_to_the_terminal(tmp_path):
    """bitsandbytes warns at import (on a CPU with AVX512-BF16 and no `kernels` package), usually before
    any run has set logging up, when Python prints a warning bare on stderr. `import bench` holds it: a
    command that imports peft first prints nothing, and a run's process keeps it in run.log."""
    bare = subprocess.run(
        [sys.executable, "-c", "import bench, peft, bitsandbytes"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bare.returncode == 0 and NOISE not in bare.stdout + bare.stderr, bare.stderr[-2000:]
    script = (
        "import sys; from pathlib import Path; import bench; from bench.system import console; "
        "console.setup(Path(sys.argv[1])); import peft, bitsandbytes; "
        "from bitsandbytes.functional import has_avx512bf16; print(bool(has_avx512bf16()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and NOISE not in run.stderr, run.stderr[-2000:]
    # Where bitsandbytes says it at all: its CPU branch runs on AVX512-BF16 and fails without `kernels`.
    says_it = run.stdout.strip().endswith("True") and importlib.util.find_spec("kernels") is None
    assert (NOISE in (tmp_path / console.LOG_FILE).read_text()) == says_it
