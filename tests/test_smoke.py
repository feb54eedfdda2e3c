"""End to end on the embedded model: the user's own sweep command over every registered method,
with real TRL trainers and real lm-eval scoring, at the smallest real settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

import methods
from tests.conftest import REPO

pytestmark = pytest.mark.slow
METHODS = methods.names()


def sweep(out: Path, *overrides: str) -> dict[str, dict]:
    """Run `python -m bench -m ...` as a user does; return {method: metrics} for its runs."""
    cmd = [sys.executable, "-m", "bench", "-m", *overrides, "debug=smoke", f"hydra.sweep.dir={out}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    runs = {}
    for path in out.glob("*/metrics.json"):
        record = json.loads(path.read_text())
        runs[record["method"]] = record | {"_dir": path.parent}
    failed = {m: r.get("error") for m, r in runs.items() if r["status"] != "success"}
    assert proc.returncode == 0 and not failed, f"sweep failed: {failed}\n{proc.stderr[-3000:]}"
    return runs


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory) -> dict[str, dict]:
    return sweep(tmp_path_factory.mktemp("sweep"), f"method={','.join(METHODS)}")


@pytest.mark.parametrize("name", METHODS)
def test_method_trains_only_its_lora_weights(smoke_sweep, name):
    run = smoke_sweep[name]
    assert run["status"] == "success"
    assert run["params/trainable"] == run["params/lora_exact"] > 0
    assert run["params/lora_card_formula"] == 2 * run["peft/r"] * 576 * 30 * 7
    assert run["train/lora_tensors_changed"] == run["train/lora_tensors"] > 0
    assert run["train/base_tensors_changed"] == 0 < run["train/base_tensors"]
    # The saved adapter is the trained one: LoRA B starts at zero, so a non-zero B was learned.
    weights = load_file(run["_dir"] / "adapter" / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)
    assert sum(t.numel() for t in weights.values()) == run["params/lora_exact"]


@pytest.mark.parametrize("name", METHODS)
def test_method_is_measured(smoke_sweep, name):
    run = smoke_sweep[name]
    assert run["sys/peak_mem_bytes"] >= run["sys/p99_mem_bytes"] >= run["sys/avg_mem_bytes"] > 100e6
    assert run["train/steps"] >= 1 and run["train/step_time_s"] > 0
    assert run["train/tokens"] > 0 and run["train/tokens_per_s"] > 0
    assert run["train/adapter_bytes"] > 0 and run["train/prompts"] == 4
    assert run["sys/device"] == "cpu" and run["sys/precision"] == "fp32"
    assert run["versions/trl"].startswith("1.12.") and run["config_hash"]


def test_every_method_sees_the_same_prompts_and_pairs(smoke_sweep):
    assert len({r["data/prompts_fingerprint"] for r in smoke_sweep.values()}) == 1
    assert (
        smoke_sweep["dpo"]["data/preference_fingerprint"]
        == smoke_sweep["orpo"]["data/preference_fingerprint"]
    )
    assert (
        smoke_sweep["kto"]["data/preference_fingerprint"] == smoke_sweep["dpo"]["data/preference_fingerprint"]
    )
    stats = smoke_sweep["dpo"]
    assert stats["data/pairs"] + stats["data/dropped"] == stats["data/prompts"] == 4
    assert "data/preference_fingerprint" not in smoke_sweep["grpo"]


def test_every_run_is_scored_against_one_cached_base_score(smoke_sweep):
    for run in smoke_sweep.values():
        assert run["eval/n"] >= 20 and run["eval/base_n"] == run["eval/n"]
        assert 0 <= run["eval/accuracy"] <= 1 and run["eval/stderr"] >= 0
        assert run["eval/delta"] == pytest.approx(run["eval/accuracy"] - run["eval/base_accuracy"])
    assert len({run["eval/base_accuracy"] for run in smoke_sweep.values()}) == 1


def test_report_tabulates_the_sweep(smoke_sweep):
    folder = next(iter(smoke_sweep.values()))["_dir"].parent
    out = subprocess.run(
        [sys.executable, "-m", "bench.report", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    for name in METHODS:
        assert f"| {name} |" in out
    assert (folder / "report.md").read_text().strip() == out.strip()


def test_evaluate_cli_scores_a_saved_adapter_with_and_without_merge(smoke_sweep):
    adapter = smoke_sweep["dpo"]["_dir"] / "adapter"
    results = {}
    for flags in ([], ["--merge"]):
        subprocess.run(
            [sys.executable, "-m", "bench.evaluate", str(adapter), *flags],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=600,
        )
        results[bool(flags)] = json.loads(
            (adapter.parent / ("eval_merged.json" if flags else "eval.json")).read_text()
        )
    plain, merged = results[False], results[True]
    assert plain["eval/accuracy"] == smoke_sweep["dpo"]["eval/accuracy"]  # greedy and seeded: reproducible
    assert merged["eval/merged"] is True and merged["eval/merge_max_abs_logit_diff"] < 1e-3
    assert abs(merged["eval/accuracy"] - plain["eval/accuracy"]) <= 0.1  # ≤ 2 of 20 greedy answers may flip
    assert merged["eval/base_accuracy"] == plain["eval/base_accuracy"]


def test_gsm8k_from_local_files(tmp_path, gsm8k_dir):
    runs = sweep(tmp_path, "method=grpo,dpo", "task=gsm8k", f"task.data_dir={gsm8k_dir}")
    assert set(runs) == {"grpo", "dpo"}
    assert runs["grpo"]["data/prompts_fingerprint"] == runs["dpo"]["data/prompts_fingerprint"]
    for run in runs.values():
        assert run["task"] == "gsm8k" and run["eval/task"] == "rftb_gsm8k" and run["eval/n"] >= 20


def test_ppo_with_a_trained_reward_model(compose, tmp_path):
    from bench.run import run

    record = run(
        compose(
            "method=ppo",
            "method.reward=model",
            "debug=smoke",
            "eval=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["method/reward"] == "model" and record["method/reward_model_steps"] == 2
    assert record["data/pairs"] >= 1  # the reward model learned from the shared preference pairs
    assert record["train/lora_tensors_changed"] == record["train/lora_tensors"]
    assert record["train/base_tensors_changed"] == 0


def test_qlora_nf4_trains_the_same_lora_and_logs_to_wandb_offline(compose, tmp_path, monkeypatch):
    from bench.run import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose("method=dpo", "quant=nf4", "logger=wandb", "debug=smoke", "eval=none", "isolate=false")
    cfg.output_dir = str(tmp_path)
    record = run(cfg)
    assert record["status"] == "success", record.get("error")
    assert record["quant"] == "nf4"
    # Same adapters as full precision: trainable == exact, and the 4-bit base unpacks to the same total.
    assert record["params/trainable"] == record["params/lora_exact"] == 4_884_480
    assert record["params/total"] == 139_399_488
    # TRL keeps LoRA in bf16 for quantized models: an Adam step of ~lr can fall below bf16's spacing
    # for lora_A's random init, so not every A tensor moves in two steps; every B (zero at init) must.
    assert 0 < record["train/lora_tensors_changed"] <= record["train/lora_tensors"]
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k)
    assert record["train/base_tensors_changed"] == 0
    # W&B offline: a real run folder with the metrics table, and no network needed.
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list((run_dir / "files" / "media" / "table").glob("metrics_*.table.json"))
    assert json.loads((tmp_path / "metrics.json").read_text())["wandb/dir"].startswith(str(run_dir))
