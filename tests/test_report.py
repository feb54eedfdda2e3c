"""The report groups runs by configuration and aggregates seeds (mean ± std), from metrics.json files."""

from __future__ import annotations

import json

import pytest

from bench.report import aggregate, load_runs, main


def record(method: str, seed: int, accuracy: float, status: str = "success", **extra) -> dict:
    return {
        "method": method,
        "model": "m",
        "task": "arithmetic",
        "quant": "none",
        "peft/r": 16,
        "seed": seed,
        "status": status,
        "eval/accuracy": accuracy,
        "sys/peak_mem_bytes": 2**30,
        **extra,
    }


def write(folder, name, rec):
    (folder / name).mkdir(parents=True)
    (folder / name / "metrics.json").write_text(json.dumps(rec))


def test_seeds_are_aggregated_and_failures_excluded(tmp_path):
    for i, (seed, acc) in enumerate([(0, 0.30), (1, 0.40), (2, 0.50)]):
        write(tmp_path, f"{i}_dpo_seed{seed}", record("dpo", seed, acc))
    write(tmp_path, "3_grpo_seed0", record("grpo", 0, 0.6))
    write(tmp_path, "4_grpo_seed1", record("grpo", 1, 0.0, status="failed", error="boom"))
    rows = {row["method"]: row for row in aggregate(load_runs([tmp_path]))}
    mean, std, n = rows["dpo"]["eval/accuracy"]
    assert (mean, n) == (pytest.approx(0.4), 3) and std == pytest.approx(0.1)
    assert rows["dpo"]["runs"] == "3/3" and rows["dpo"]["seeds"] == [0, 1, 2]
    assert rows["grpo"]["runs"] == "1/2" and rows["grpo"]["eval/accuracy"][0] == pytest.approx(0.6)


def test_random_weight_runs_never_report_accuracy(tmp_path):
    write(tmp_path, "0_dpo_seed0", record("dpo", 0, 0.9, weights="random"))
    (row,) = aggregate(load_runs([tmp_path]))
    assert "eval/accuracy" not in row and "sys/peak_mem_bytes" in row


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    write(tmp_path, "0_dpo_seed0", record("dpo", 0, 0.3))
    write(tmp_path, "1_dpo_seed1", record("dpo", 1, 0.5))
    write(tmp_path, "2_kto_seed0", record("kto", 0, 0.2, status="failed", error="KTO needs batch size > 1"))
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0.400 ± 0.141" in out and "KTO needs batch size > 1" in out
    assert (tmp_path / "report.md").exists() and "eval/accuracy_std" in (tmp_path / "report.csv").read_text()
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "nothing-here")])
