"""The report, from synthetic metrics.json files: aggregation, failures, significance, files, CLI, W&B."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench.report.plots import PLOTS
from bench.report.summary import aggregate, load_runs, main, write_report
from bench.run.callbacks import ReportCallback

# The base model is right on the first 50 of 200 items.
BASE = [1.0] * 50 + [0.0] * 150
PNG = b"\x89PNG\r\n\x1a\n"


def record(method: str, seed: int = 0, status: str = "success", items: list | None = None, **extra) -> dict:
    rec = {
        "method": method,
        "model": "m",
        "task": "arithmetic",
        "quant": "none",
        "peft/mode": "lora",
        "peft/r": 16,
        "weights": "pretrained",
        "seed": seed,
        "status": status,
    }
    if status != "success":
        return rec | extra
    items = BASE if items is None else items
    rec |= {
        "eval/accuracy": float(np.mean(items)),
        "eval/base_accuracy": float(np.mean(BASE)),
        "eval/delta": float(np.mean(items) - np.mean(BASE)),
        "eval/items": list(items),
        "eval/base_items": BASE,
        "sys/peak_mem_bytes": 3 * 2**30,
        "mem/weights_bytes": 2**30,
        "mem/trainable_bytes": 2**24,
        "mem/gradients_bytes": 2**24,
        "mem/optimizer_bytes": 2**25,
        "mem/other_bytes": 2 * 2**30 - 2**26,
        "train/tokens_per_s": 100.0 + seed,
        "time/train_s": 50.0,
        "time/total_s": 80.0,
        "time/full_s": 120.0,
    }
    return rec | extra


def write(folder: Path, name: str, rec: dict) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "metrics.json").write_text(json.dumps(rec))


def better(extra: int) -> list[float]:
    """The base's items plus `extra` more correct ones: only the method is right on those."""
    return BASE[:50] + [1.0] * extra + [0.0] * (150 - extra)


def noise() -> list[float]:
    """Three items won and three lost against the base: no difference."""
    return [0.0] * 3 + BASE[3:50] + [1.0] * 3 + [0.0] * 147


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """grpo clearly better than the base (3 seeds), dpo no different, kto failed, ppo on random weights."""
    curve = {"train/reward_curve": [0.1, 0.3, 0.5]}
    for seed in range(3):
        write(tmp_path, f"{seed}_grpo_seed{seed}", record("grpo", seed, items=better(40 + seed), **curve))
    write(tmp_path, "3_dpo_seed0", record("dpo", 0, items=noise()))
    error = "ValueError: KTO needs batch size > 1\nsecond line"
    write(tmp_path, "4_kto_seed0", record("kto", 0, "failed", error=error))
    write(tmp_path, "5_ppo_seed0", record("ppo", 0, weights="random"))
    return tmp_path


def test_seeds_are_aggregated_and_failures_kept_as_rows(tmp_path):
    for seed, acc in enumerate([0.3, 0.4, 0.5]):
        write(tmp_path, f"{seed}_dpo_seed{seed}", record("dpo", seed, **{"eval/accuracy": acc}))
    write(tmp_path, "3_grpo_seed0", record("grpo", 0, **{"eval/accuracy": 0.6}))
    write(tmp_path, "4_grpo_seed1", record("grpo", 1, "oom", error="CUDA out of memory\nTraceback ..."))
    write(tmp_path, "5_kto_seed0", record("kto", 0, "failed", error="boom"))
    (tmp_path / "6_orpo_seed0").mkdir()
    (tmp_path / "6_orpo_seed0" / "metrics.json").write_text("{not json")
    runs = load_runs([tmp_path])
    rows = aggregate(runs).set_index("method")
    assert rows.loc["dpo", "eval/accuracy"] == pytest.approx(0.4)
    assert rows.loc["dpo", "eval/accuracy_std"] == pytest.approx(0.1)  # sample std, ddof=1
    assert rows.loc["dpo", ["runs_ok", "runs_total", "seeds"]].tolist() == [3, 3, "0,1,2"]
    assert rows.loc["grpo", "eval/accuracy"] == pytest.approx(0.6) and rows.loc["grpo", "runs_ok"] == 1
    assert rows.loc["grpo", "failures"] == "seed 1: oom: CUDA out of memory"
    assert rows.loc["kto", "runs_ok"] == 0 and rows.loc["kto", "failures"] == "seed 0: failed: boom"
    assert np.isnan(rows.loc["kto", "eval/accuracy"])
    assert len(load_runs([tmp_path, tmp_path / "0_dpo_seed0"])) == len(runs) == 7  # each run once
    unreadable = runs[runs["status"] == "unreadable"]
    assert len(unreadable) == 1 and "metrics.json" in unreadable["error"].iloc[0]


def test_random_weight_runs_never_report_accuracy(sweep):
    rows = aggregate(load_runs([sweep])).set_index("method")
    assert rows.loc["ppo", "sys/peak_mem_bytes"] == 3 * 2**30
    assert rows.loc["ppo", ["eval/accuracy", "eval/delta", "eval/p"]].isna().all()
    assert not rows.loc["ppo", "eval/significant"]


def test_significance_mark_for_a_real_gain_and_not_for_noise(sweep):
    rows = aggregate(load_runs([sweep])).set_index("method")
    grpo, dpo = rows.loc["grpo"], rows.loc["dpo"]
    assert grpo["eval/test"] == "permutation" and dpo["eval/test"] == "mcnemar"  # 3 seeds vs one seed
    assert grpo["eval/p_holm"] < 0.001 and grpo["eval/significant"]
    assert grpo["eval/delta_ci_low"] < 41 / 200 < grpo["eval/delta_ci_high"]
    assert dpo["eval/p"] == 1.0 and not dpo["eval/significant"]
    lines = write_report([sweep]).markdown.splitlines()
    assert "+0.205 ± 0.005*" in next(line for line in lines if line.startswith("| grpo"))
    assert "*" not in next(line for line in lines if line.startswith("| dpo"))


def test_methods_are_compared_pair_by_pair_only_where_only_the_method_differs(sweep):
    """GRPO's gain over DPO is real, DPO and SFT are the same items (noise); ORPO on another task and PPO
    on random weights (no items) are in no pair; Holm adjusts over the three pairs that remain."""
    write(sweep, "6_sft_seed0", record("sft", 0, items=noise(), overrides="train.args.learning_rate=3e-4"))
    write(sweep, "7_orpo_seed0", record("orpo", 0, items=better(60), task="gsm8k"))
    report = write_report([sweep])
    pairs = json.loads((sweep / "summary.json").read_text())["pairs"]
    by_pair = {(p["better"].split()[0], p["worse"].split()[0]): p for p in pairs}
    assert set(by_pair) == {("grpo", "dpo"), ("grpo", "sft"), ("dpo", "sft")}, by_pair  # better-first
    gain = by_pair["grpo", "dpo"]
    grpo_mean = np.mean([np.mean(better(40 + s)) for s in range(3)])
    assert gain["delta"] == pytest.approx(grpo_mean - np.mean(noise())) and gain["significant"]
    assert gain["p"] <= gain["p_holm"] <= min(1.0, 3 * gain["p"])
    same = by_pair["dpo", "sft"]
    assert same["delta"] == 0 and same["p_holm"] == 1.0 and not same["significant"]
    section = report.markdown.split("## Method against method")[1].split("## Legend")[0]
    assert section.count("| grpo") == 2 and "within noise" in section and "over the 3 pairs" in section


def test_report_files_and_plots(sweep, capsys):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert (sweep / "summary.md").read_text().strip() == out.strip()
    assert "## Failed runs" in out and "KTO needs batch size > 1" in out and "second line" not in out
    header = (sweep / "summary.csv").read_text().splitlines()[0].split(",")
    expected = "method runs_ok seeds eval/accuracy_std eval/accuracy_ci_low eval/p_holm eval/significant"
    assert set((expected + " time/train_s time/full_s failures").split()) <= set(header)
    data = json.loads((sweep / "summary.json").read_text())
    assert {row["method"] for row in data["summary"]} == {"grpo", "dpo", "kto", "ppo"}
    assert len(data["runs"]) == 6 and all("eval/items" not in run for run in data["runs"])
    pngs = sorted(sweep.glob("*.png"))
    assert len(pngs) == 5 and sorted(data["plots"]) == [p.name for p in pngs]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_missing_data_skips_plots_without_crashing(tmp_path):
    write(tmp_path, "0_x_seed0", {"status": "success", "method": "x"})
    report = write_report([tmp_path], tmp_path / "out")
    assert report.summary["runs_ok"].tolist() == [1]
    assert set(report.skipped_plots) == set(PLOTS)
    assert (tmp_path / "out" / "summary.md").exists() and not list((tmp_path / "out").glob("*.png"))


def test_cli_exit_codes(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert main([str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert "no metrics.json" in err and "is not a folder" in err and "Traceback" not in err


def test_callback_writes_the_report_and_the_wandb_table_then_fails_the_sweep(sweep, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = {"name": "wandb", "project": "p", "mode": "offline"}
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": logger})
    with pytest.raises(SystemExit, match="1 of 6 runs failed"):  # after writing the report
        ReportCallback(exit_on_failed_runs=True).on_multirun_end(config)
    assert (sweep / "summary.md").exists()
    (run,) = (sweep / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("comparison_*.table.json")
    content = json.loads(table.read_text())
    assert "eval/p_holm" in content["columns"]
    methods = {row[content["columns"].index("method")] for row in content["data"]}
    assert methods == {"grpo", "dpo", "kto", "ppo"}
    assert len(list((run / "files" / "media" / "images").rglob("*.png"))) == 5


def test_the_sweeps_last_line_names_its_folder_and_its_report(sweep, capsys, monkeypatch):
    """What `make smoke` ends with: after the report's tables, where the sweep's runs and its report are."""
    monkeypatch.chdir(sweep.parent)  # the sweep folder as given on the command line, relative
    config = OmegaConf.create({"hydra": {"sweep": {"dir": sweep.name}}, "logger": {"name": "none"}})
    ReportCallback(exit_on_failed_runs=False).on_multirun_end(config)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"sweep done: 6 runs (5 success, 1 failed) in {sweep.name}; report: {sweep.name}/summary.md"
    assert (sweep / "summary.md").is_file()
    with pytest.raises(SystemExit, match=f"1 of 6 runs failed; see {sweep.name}/summary.md"):
        ReportCallback(exit_on_failed_runs=True).on_multirun_end(config)


def test_callback_never_raises(tmp_path, caplog):
    sweep = {"dir": str(tmp_path / "missing")}
    config = OmegaConf.create({"hydra": {"sweep": sweep}, "logger": {"name": "none"}})
    ReportCallback(exit_on_failed_runs=True).on_multirun_end(config)
    assert "bench.report failed" in caplog.text


def test_memory_section_splits_the_peak_and_says_what_is_left_over(tmp_path):
    split = {
        "mem/runtime_bytes": 2**28,
        "mem/activations_bytes": 2**29,
        "mem/logits_bytes": 2**27,
        "mem/kv_cache_bytes": 0,
        "mem/max_kv_cache_bytes": 2**24,
        "mem/peak_during": "step",
        # the record's other (2 GiB - 64 MiB) less the three parts above: 1088 MiB, 35.4% of 3 GiB
        "mem/other_bytes": 2 * 2**30 - 2**26 - 2**28 - 2**29 - 2**27,
    }
    write(tmp_path, "0_grpo_seed0", record("grpo", 0, **split))
    write(tmp_path, "1_dpo_seed0", record("dpo", 0))  # made before the split: no row
    text = write_report([tmp_path]).markdown
    section = text.split("## Memory at the peak")[1].split("\n\n")[1]
    rows = [line for line in section.splitlines() if line.startswith("| grpo") or line.startswith("| dpo")]
    assert len(rows) == 1 and rows[0].startswith("| grpo")
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1:] == ["3.00", "step", "256", "1088", "512", "128", "0 / 16", "1088", "35.4"]


def test_no_memory_section_without_the_split(sweep):
    assert "## Memory at the peak" not in write_report([sweep]).markdown
