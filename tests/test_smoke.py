"""End to end on the tiny model (model=tiny): every method adapter (methods/) through the
user's own sweep command, with real TRL trainers, real lm-eval scoring and real W&B offline files, at the
smallest real settings; and the recipes around it (full fine-tuning, pipelines, other tasks, PPO's
trained reward model, QLoRA, the submitit launcher). The mechanics are the subject: a random model learns
nothing, so these tests never ask what a method learned (tests/test_headline.py does, on the embedded
model).

The sweep is shared, but never asserted on as a whole: each test looks at its own method's run, so a
broken method fails its own tests and no other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from safetensors.torch import load_file

import methods
from tests.conftest import REPO, TINY, TINY_PARAMS, needs, on_this_trl
from tests.sweeps import (
    Sweep,
    assert_trains_only_its_adapter,
    learned_from_rewards,
    runs,
    sweep,
)

pytestmark = pytest.mark.slow
# Every adapter (a variant is its adapter with other TRL args, each checked in test_config against the TRL
# config it builds); `python -m bench -m 'method=glob(*)' model=tiny debug=smoke` trains the variants too.
METHODS = on_this_trl(methods.names())  # PPO and BCO where the installed TRL has them


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory) -> Sweep:
    """Every adapter on the tiny model, in one process (the per-run process is tested in test_reliability)."""
    return sweep(tmp_path_factory.mktemp("sweep"), f"method={','.join(METHODS)}", "model=tiny", "isolate=false")


def test_the_sweep_exits_zero_and_writes_the_report(smoke_sweep):
    assert smoke_sweep.returncode == 0, smoke_sweep.stderr[-3000:]
    folder = smoke_sweep.folder
    for name in ("summary.md", "summary.csv", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    pngs = list(folder.glob("*.png"))
    assert len(pngs) >= 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    summary = (folder / "summary.md").read_text()
    for name in METHODS:
        assert f"| {name} " in summary
    # W&B (offline by default): the report run holds the comparison table; each run has its own folder.
    tables = list(folder.glob("wandb/offline-run-*/files/media/table/comparison_*.table.json"))
    assert tables and all(m in tables[0].read_text() for m in smoke_sweep.successful())


def test_the_terminal_says_each_run_start_and_end_and_the_run_log_keeps_the_rest(smoke_sweep):
    """A quiet console: a line as each run starts and one as it ends (status, peak, time, accuracy), then
    the report; libraries' warnings, the trainer's log lines and the phases go to each run's run.log."""
    terminal = smoke_sweep.stdout.split("# rft-bench report")[0] + smoke_sweep.stderr
    lines = [line for line in terminal.splitlines() if line.strip()]
    runs = len(smoke_sweep.runs)
    assert len(lines) <= 5 * runs, "\n".join(lines[:40])
    assert sum(" · peak " in line for line in lines) == len(smoke_sweep.successful())
    assert "gemm_4bit_forward" not in terminal and "FutureWarning" not in terminal and "{'loss'" not in terminal
    # Where things are: each run's end line names its folder, and the sweep's last line its folder and report.
    for run in smoke_sweep.successful().values():
        assert sum(" · peak " in line and line.endswith(f" · {run['_dir']}") for line in lines) == 1, run["_dir"]
    last = smoke_sweep.stdout.strip().splitlines()[-1]
    assert last.startswith(f"sweep done: {len(smoke_sweep.runs)} runs (") and last.endswith(
        f" in {smoke_sweep.folder}; report: {smoke_sweep.folder / 'summary.md'}"
    ), last
    logs = {name: (run["_dir"] / "run.log").read_text() for name, run in smoke_sweep.runs.items()}
    assert all("phase: train" in log for log in logs.values())
    assert "[bench.recipe.train][INFO] - step 1: {" in logs["dpo"]  # the trainer's log dicts, kept in the file


@pytest.mark.parametrize("name", on_this_trl(["sft", "dpo", "kto", "orpo", "grpo", "ppo"]))
def test_the_estimate_matches_what_the_run_measured(smoke_sweep, name):
    """bench.estimate, from the run's own recorded config and prompt length, against the run's measured
    parts: the weights, gradients and optimizer state exactly, what it saved and its KV cache within 10%."""
    from bench.config import history
    from bench.estimate.model import estimate
    from bench.system import files

    run = smoke_sweep.run(name)
    cfg = history.complete(files.read_yaml(run["_dir"] / "config_resolved.yaml"))
    cfg.device, cfg.precision = "cpu", "fp32"
    parts = estimate(cfg, prompt_tokens=run["data/max_prompt_tokens"]).parts
    # PPO's value model keeps its own rotary buffers, which the estimate does not count twice: bytes apart.
    assert parts["weights"] + parts["extra_models"] == pytest.approx(run["mem/weights_bytes"], rel=1e-4)
    for part in ("trainable", "gradients", "optimizer"):
        assert parts[part] == run[f"mem/{part}_bytes"], part
    for part, key in (
        ("activations", "mem/max_activations_bytes"),
        ("logits", "mem/max_logits_bytes"),
        ("kv_cache", "mem/max_kv_cache_bytes"),
    ):
        assert parts[part] == pytest.approx(run[key], rel=0.10, abs=1), part


@pytest.mark.parametrize("name", METHODS)
def test_method_trains_only_its_adapter_on_the_tiny_model(smoke_sweep, name):
    """Every method's trainer touches the adapter alone, saves what it trained, and counts it exactly.
    A method learning from reward differences moves iff some group's rewards differed."""
    run = smoke_sweep.run(name)
    assert_trains_only_its_adapter(run, hidden=TINY["hidden_size"], layers=TINY["num_hidden_layers"])


@pytest.mark.parametrize("name", METHODS)
def test_method_is_measured_phase_by_phase(smoke_sweep, name):
    run = smoke_sweep.run(name)
    assert run["sys/peak_mem_bytes"] >= run["sys/p99_mem_bytes"] >= run["sys/avg_mem_bytes"] > 100e6
    assert run["train/steps"] >= 1 and run["train/step_time_s"] > 0
    assert run["train/tokens"] > 0 and run["train/tokens_per_s"] > 0
    assert run["train/adapter_bytes"] > 0 and run["train/prompts"] == 4
    assert run["sys/device"] == "cpu" and run["sys/precision"] == "fp32"
    assert run["versions/trl"] == version("trl") and run["config_hash"]
    phases = ("setup", "build", "train", "save", "eval")
    assert all(run[f"time/{p}_s"] > 0 and run[f"sys/peak_mem_{p}_bytes"] > 0 for p in phases)
    assert run["time/total_s"] >= sum(run[f"time/{p}_s"] for p in phases)
    assert run["time/full_s"] >= run["time/total_s"]
    # The memory breakdown adds up to the peak, no part negative, and agrees with independent counts.
    parts = ["runtime", "weights", "trainable", "gradients", "optimizer", "activations", "logits", "kv_cache", "other"]
    assert all(run[f"mem/{p}_bytes"] >= 0 for p in parts)
    assert sum(run[f"mem/{p}_bytes"] for p in parts) == run["sys/peak_mem_bytes"] - run["mem/unaccounted_bytes"]
    # Every method's step saves tensors for backward; the generating ones also hold a KV cache. The peak
    # falls in one of the two, and only that one's part is in the sum.
    assert run["mem/max_saved_bytes"] > 0
    generates = run["method/adapter"] in ("grpo", "rloo", "ppo", "online_dpo")
    assert (run["mem/max_kv_cache_bytes"] > 0) == generates and run["gen/path"] == ("trl" if generates else "none")
    during = run["mem/peak_during"]
    assert (run["mem/kv_cache_bytes"] > 0) == (during == "generation") != (run["mem/activations_bytes"] > 0)
    assert run["gen/eval_path"] == "merged" and run["eval/merge_max_abs_logit_diff"] < 1e-3  # eval.path default
    # fp32 on CPU; PPO's optimizer also trains its value model (a LoRA copy plus its score head).
    if run["method/adapter"] == "ppo":
        assert run["mem/trainable_bytes"] > 2 * 4 * run["params/trainable"]
    else:
        assert run["mem/trainable_bytes"] == 4 * run["params/trainable"]
        assert run["mem/optimizer_tensors"] == run["train/trainable_tensors"]
    # AdamW keeps two moments per trained value and a 4-byte step counter per trained tensor.
    assert run["mem/optimizer_bytes"] == 2 * run["mem/trainable_bytes"] + 4 * run["mem/optimizer_tensors"]
    assert run["mem/weights_bytes"] >= 4 * (run["params/total"] - run["params/trainable"])
    # Distance from the limit: model FLOP/s against the machine's measured (cached) matmul peak.
    assert 0 < run["perf/mfu"] < 1 and run["perf/flops_per_s"] > 0
    assert run["train/tokens"] == sum(run[f"train/tokens_{k}"] for k in ("trained", "forward", "generated"))


def test_a_saved_adapter_has_a_model_card_with_its_results(smoke_sweep):
    from huggingface_hub import ModelCard

    run = smoke_sweep.run("dpo")
    card = ModelCard.load(run["_dir"] / "adapter" / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == "embedded:tiny-llama"  # its own name
    assert "dpo" in card.data.tags and card.data.eval_results[0].metric_value == run["eval/accuracy"]
    assert "## Results" in card.text and f"`params/trainable` | {run['params/trainable']}" in card.text


def test_every_method_sees_the_same_prompts_and_pairs(smoke_sweep):
    runs = smoke_sweep.successful()
    assert len(runs) >= 2 and len({r["data/prompts_fingerprint"] for r in runs.values()}) == 1
    offline = [r for r in runs.values() if r["method/adapter"] in ("dpo", "kto", "orpo", "cpo", "bco")]
    assert offline and len({r["data/preference_fingerprint"] for r in offline}) == 1
    # Whichever ran first paid for building the data; the others report its original cost.
    assert [r["data/build_cached"] for r in offline].count(False) <= 1
    assert len({r["data/build_s"] for r in offline}) == 1 and all(r["data/build_s"] > 0 for r in offline)
    stats = offline[0]
    assert stats["data/pairs"] + stats["data/dropped"] == stats["data/prompts"] == 4
    assert all(
        "data/preference_fingerprint" not in r for r in runs.values() if r["method/adapter"] in ("grpo", "rloo", "sft")
    )


def test_every_method_trains_with_one_dropout_and_one_sampling_setting(smoke_sweep):
    """What applied, read from the built trainers: one dropout policy, one sampling temperature for
    every method that samples (rollouts or offline data), and a report audit with nothing undeclared."""
    runs = smoke_sweep.successful()
    assert len(runs) == len(METHODS), sorted(set(METHODS) - set(runs))
    assert {r["fair/dropout"] for r in runs.values()} == {0.0}
    samplers = {m: r for m, r in runs.items() if "fair/temperature" in r}
    assert set(samplers) == set(METHODS) - {"sft"}  # SFT trains on gold answers: nothing sampled
    assert {r["fair/temperature"] for r in samplers.values()} == {0.7}
    assert {r["fair/max_new_tokens"] for r in samplers.values()} == {16}
    assert {r["fair/top_p"] for r in samplers.values()} == {1.0}
    assert runs["grpo"]["fair/trl_config"]["loss_type"] == "grpo"  # the paper's objective, not dapo
    assert all(r["eval/split"] == "test" for r in runs.values())
    summary = (smoke_sweep.folder / "summary.md").read_text()
    assert "## Fairness audit" in summary and "No undeclared difference" in summary, summary
    assert "NOT DECLARED" not in summary


def test_every_run_is_scored_against_one_cached_base_score(smoke_sweep):
    runs = smoke_sweep.successful()
    for run in runs.values():
        assert run["eval/n"] >= 20 and run["eval/base_n"] == run["eval/n"] == len(run["eval/items"])
        assert run["eval/accuracy"] == pytest.approx(sum(run["eval/items"]) / run["eval/n"])
        assert run["eval/base_accuracy"] == pytest.approx(sum(run["eval/base_items"]) / run["eval/n"])
        assert run["eval/delta"] == pytest.approx(run["eval/accuracy"] - run["eval/base_accuracy"])
    assert len({run["eval/base_accuracy"] for run in runs.values()}) == 1
    assert sum(not run["eval/base_cached"] for run in runs.values()) <= 1  # scored once, then cached
    assert len({run["eval/base_s"] for run in runs.values()}) == 1


def test_report_cli_tabulates_the_sweep(smoke_sweep, capsys):
    from bench.report.summary import main

    assert main([str(smoke_sweep.folder)]) == 0
    out = capsys.readouterr().out
    for name in smoke_sweep.successful():
        assert f"| {name} " in out


def test_evaluate_cli_scores_a_saved_adapter_with_and_without_merge(smoke_sweep):
    run = smoke_sweep.run("dpo")
    adapter = run["_dir"] / "adapter"
    results = {}
    from bench.recipe.evaluate import main

    for flags, out in ((["--merge"], "eval_merged.json"), (["eval.path=adapter"], "eval.json")):
        assert main([str(adapter), *flags]) == 0
        results[out] = json.loads((adapter.parent / out).read_text())
    merged, plain = results["eval_merged.json"], results["eval.json"]
    assert merged["eval/accuracy"] == run["eval/accuracy"]  # the run scored merged too: greedy, reproducible
    assert merged["eval/merged"] is True and merged["eval/merge_max_abs_logit_diff"] < 1e-3
    assert plain["gen/eval_path"] == "adapter" and plain["eval/merged"] is False
    assert abs(merged["eval/accuracy"] - plain["eval/accuracy"]) <= 0.1  # ≤ 2 of 20 greedy answers may flip
    assert merged["eval/base_accuracy"] == plain["eval/base_accuracy"]


@pytest.fixture(scope="module")
def full_sweep(tmp_path_factory) -> Sweep:
    return runs(
        tmp_path_factory.mktemp("full"), ["grpo", "dpo"], "peft=none", "eval.limit=8", "logger=none", "model=tiny"
    )


def test_full_fine_tuning_baselines(full_sweep):
    """peft=none: every weight trains, for an online and an offline method (SFT, the simplest full
    fine-tuning, is left out to keep the suite's time: it shares DPO's path through the recipe)."""
    result = full_sweep
    for name in ("grpo", "dpo"):
        run = result.run(name)
        assert run["peft/mode"] == "none" and run["peft/r"] is None
        assert run["params/trainable"] == run["params/total"] == run["params/audit_exact"] == TINY_PARAMS
        moves = name != "grpo" or learned_from_rewards(run)  # GRPO: see tests/sweeps.py, REWARD_GROUPS
        assert run["train/frozen_tensors"] == 0 and (run["train/trainable_tensors_changed"] > 0) == moves
        assert (run["_dir"] / "model" / "config.json").exists() and run["eval/n"] == 8
    # DPO keeps its own frozen reference copy when there is no adapter to disable.
    assert result.run("dpo")["mem/weights_bytes"] >= 4 * TINY_PARAMS


def test_a_second_stage_trains_a_fresh_adapter_on_the_merged_first_stage(smoke_sweep, compose, tmp_path):
    """SFT then DPO (init_from): the SFT adapter is merged into the base, DPO trains a new LoRA on top with
    the SFT model as its reference and its own offline data, and the record is the pipeline's."""
    from bench.run.runner import run

    first, plain = smoke_sweep.run("sft"), smoke_sweep.run("dpo")
    cfg = compose(
        "method=dpo",
        f"init_from={first['_dir']}",
        "model=tiny",
        "debug=smoke",
        "logger=none",
        "isolate=false",
        output_dir=tmp_path,
    )
    record = run(cfg)
    assert record["status"] == "success", record.get("error")
    assert record["method"] == "sft→dpo" and record["pipeline/stages"] == ["sft", "dpo"]
    merged = Path(record["model/path"])
    assert merged.name.startswith("merged-") and record["pipeline/merge_cached"] is False
    # The merged base is the first stage's model: W + (alpha/r) B A for every adapted weight.
    adapter = load_file(first["_dir"] / "adapter" / "adapter_model.safetensors")
    config = json.loads((first["_dir"] / "adapter" / "adapter_config.json").read_text())
    base = load_file(Path(first["model/path"]) / "model.safetensors")
    after = load_file(merged / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj"
    a, b = (adapter[f"base_model.model.{name}.lora_{x}.weight"] for x in "AB")
    expected = base[f"{name}.weight"] + config["lora_alpha"] / config["r"] * (b @ a)
    assert (after[f"{name}.weight"] - expected).abs().max() < 1e-6 and (b @ a).abs().max() > 0
    # DPO's reference is the adapter disabled, i.e. the SFT model: policy and reference agree at step 1.
    logs = json.loads((tmp_path / "train_log.json").read_text())
    assert abs(logs[0]["rewards/margins"]) < 1e-6
    # Its offline pairs were sampled from the SFT model (same prompts, other samples than plain DPO's).
    assert record["data/prompts_fingerprint"] == plain["data/prompts_fingerprint"]
    assert record["data/preference_fingerprint"] != plain["data/preference_fingerprint"]
    # Scored against the original base, as every other row: its delta is the whole pipeline's.
    assert (
        record["eval/base_accuracy"] == plain["eval/base_accuracy"]
        and record["pipeline/from_accuracy"] == first["eval/accuracy"]
    )
    assert record["pipeline/full_s"] == pytest.approx(first["time/full_s"] + record["time/full_s"], abs=0.01)
    assert record["pipeline/peak_mem_bytes"] == max(first["sys/peak_mem_bytes"], record["sys/peak_mem_bytes"])
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(merged.resolve())
    assert run(cfg)["config_hash"] == record["config_hash"]  # resumes: finished with this config, skipped


def test_a_second_stage_trains_on_a_full_fine_tune(full_sweep, compose, tmp_path):
    """A full fine-tune's saved weights are the next stage's base as they are (no merge)."""
    from bench.run.runner import run

    first = full_sweep.run("grpo")
    record = run(
        compose(
            "method=sft",
            f"init_from={first['_dir']}",
            "model=tiny",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["method"] == "grpo→sft" and record["model/path"] == str(first["_dir"] / "model")
    assert (
        record["peft/mode"] == "lora"
        and record["train/trainable_tensors_changed"] == record["train/trainable_tensors"] > 0
    )
    assert "pipeline/merge_s" not in record and record["pipeline/full_s"] > first["time/full_s"]


def test_a_text_task_from_the_readme_trains_and_is_scored(tmp_path):
    """The README's worked task (reverse): rewards read a text field; lm-eval scores it generically."""
    result = runs(tmp_path, ["grpo", "sft"], "task=reverse", "eval.limit=8", "logger=none", "model=tiny")
    for name in ("grpo", "sft"):
        run = result.run(name)
        assert run["task"] == "reverse" and run["eval/task"] == "rftb_reverse" and run["eval/n"] == 8
        assert {"eval/letters", "eval/score", "eval/base_letters"} <= set(run)
    logs = json.loads((result.run("grpo")["_dir"] / "train_log.json").read_text())
    assert any("rewards/reversed_exactly/mean" in entry for entry in logs)


def test_gsm8k_from_local_files(tmp_path, gsm8k_dir):
    """One online run: its rewards and lm-eval's scoring both read the local files. (That every method
    sees the same prompts is the shared sweep's test; a second method here would only add time.)"""
    result = runs(
        tmp_path, ["grpo"], "task=gsm8k", f"task.data_dir={gsm8k_dir}", "eval.limit=8", "logger=none", "model=tiny"
    )
    run = result.run("grpo")
    assert run["task"] == "gsm8k" and run["eval/task"] == "rftb_gsm8k" and run["eval/n"] == 8
    assert len(run["eval/items"]) == run["eval/n"] and run["train/prompts"] == 4
    logs = json.loads((run["_dir"] / "train_log.json").read_text())
    assert any(key.startswith("rewards/") for entry in logs for key in entry)  # the task's rewards ran


@needs("ppo")
@pytest.mark.parametrize("peft", ["lora", "none"])  # none: the reward model is trained whole, not merged
def test_ppo_with_a_trained_reward_model(compose, tmp_path, peft):
    from bench.run.runner import run

    record = run(
        compose(
            "method=ppo",
            "method.reward=model",
            f"peft={peft}",
            "model=tiny",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["method/reward"] == "model" and record["method/reward_model_steps"] == 2
    assert record["data/pairs"] >= 1  # the reward model learned from the shared preference pairs
    assert record["train/trainable_tensors_changed"] == record["train/trainable_tensors"]
    assert record["train/frozen_tensors_changed"] == 0
    # The reward model trains inside the adapter's build, which the build phase measures by construction
    # (a wall-clock bound here, build_s > 1, failed at 0.998 s on a fast CI run: no timed assertions).
    assert record["method/reward_model_final_loss"] is not None and record["time/build_s"] > 0


def test_qlora_nf4_trains_the_same_lora_and_logs_to_wandb_offline(compose, tmp_path, monkeypatch):
    from bench.run.runner import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose("method=dpo", "quant=nf4", "model=tiny", "logger=wandb", "debug=smoke", "eval=none", "isolate=false")
    cfg.output_dir = str(tmp_path)
    record = run(cfg)
    assert record["status"] == "success", record.get("error")
    assert record["quant"] == "nf4"
    # Same adapters as full precision: trainable == exact, and the 4-bit base unpacks to the same total.
    assert record["params/trainable"] == record["params/audit_exact"] == 32_768
    assert record["params/total"] == TINY_PARAMS + 32_768
    # The adapter trains in fp32 as under LoRA (TRL casts a quantized model's adapter to bf16;
    # bench.recipe.dtypes.settle_dtypes undoes it). B starts at zero, so A's first gradient is zero and its
    # second tiny on this random 4-bit base: not every A tensor moves in two steps; every B must.
    assert record["train/trainable_dtype"] == "float32" and record["train/frozen_dtypes"] == "float32+uint8"
    assert 0 < record["train/trainable_tensors_changed"] <= record["train/trainable_tensors"]
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in weights.items() if "lora_B" in k)
    assert record["train/frozen_tensors_changed"] == 0
    # W&B offline: a real run folder with the metrics table, and no network needed.
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list((run_dir / "files" / "media" / "table").glob("metrics_*.table.json"))
    assert json.loads((tmp_path / "metrics.json").read_text())["wandb/dir"].startswith(str(run_dir))


def test_submitit_local_launcher_runs_jobs_as_separate_processes_and_requeues_a_preempted_one(tmp_path):
    """hydra/launcher=submitit_local: each job its own process (logs under .submitit/), report at the end;
    submitit's preemption signal (USR2) mid-training requeues the job, whose run is recorded interrupted
    and then run again to success, as on Slurm (README: Slurm preemption)."""
    import signal
    import time

    import psutil

    # On the tiny model two steps take under a second: 10 keep the job in training when the signal comes.
    # The second job only has to be a second process: SFT again, at 2 steps (ORPO would build offline data).
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "-m",
        "method=sft",
        "train.args.max_steps=10,2",
        "eval=none",
        "logger=none",
        "debug=smoke",
        "model=tiny",
        "hydra/launcher=submitit_local",
        "isolate=false",
        f"hydra.sweep.dir={tmp_path}",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sft = tmp_path / "0_sft_seed0"
    seen, deadline = [], time.time() + 900
    while time.time() < deadline and "phase: train" not in _read(sft / "run.log"):
        time.sleep(0.3)
    (job,) = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)  # the job logging into sft's folder
        if "submitit.core._submit" in " ".join(p.cmdline()) and any(str(sft) in f.path for f in p.open_files())
    ]
    job.send_signal(signal.SIGUSR2)
    while proc.poll() is None and time.time() < deadline:
        status = json.loads(_read(sft / "metrics.json", "{}") or "{}").get("status")
        if status and (not seen or seen[-1] != status):
            seen.append(status)
        time.sleep(0.2)
    output = proc.communicate()[0]
    assert proc.returncode == 0, output[-3000:]
    assert "interrupted" in seen and seen[-1] == "success", seen  # recorded as interrupted, then rerun
    records = {path.parent.name: json.loads(path.read_text()) for path in tmp_path.glob("*/metrics.json")}
    assert len(records) == 2 and {r["train/steps"] for r in records.values()} == {10, 2}
    assert all(r["status"] == "success" and r["params/trainable"] == 32_768 for r in records.values())
    assert (tmp_path / "summary.md").exists()
    assert list(tmp_path.glob(".submitit/*/*_log.out"))  # submitit's per-job logs
    assert "Requeued job" in "".join(p.read_text() for p in tmp_path.glob(".submitit/*/*_log.*"))


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return default


def test_random_weights_train_quantized_as_the_gpu_check_runs_them(compose, tmp_path):
    """model.weights=random with quant=nf4: the random model is written once and quantized as it loads
    (an offline GPU node has no weights to download; `make gpu-check` runs QLoRA this way)."""
    from bench.run.runner import run

    record = run(
        compose(
            "method=dpo",
            "model=tiny",
            "model.weights=random",
            "quant=nf4",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["quant"] == "nf4" and record["weights"] == "random"
    assert record["params/trainable"] == record["params/audit_exact"] == 32_768
    folders = [f for f in (Path(os.environ["RFT_BENCH_CACHE"]) / "models").glob("random-llama-*") if f.is_dir()]
    assert len(folders) == 1 and (folders[0] / "model.safetensors").exists()
