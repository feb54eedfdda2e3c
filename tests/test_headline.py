"""The five headline methods on the embedded SmolLM2-135M, through the user's own sweep command: the model
itself is the subject here (that training moves the adapter and nothing else on the model users start
from; the merged rollout path on real weights; an adapter that names its base by hub id and loads alone).
The mechanics of every method are tested on the tiny model (test_smoke.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, on_this_trl
from tests.sweeps import HEADLINE, Sweep, assert_trains_only_its_adapter, sweep

pytestmark = pytest.mark.slow
EMBEDDED = on_this_trl([*HEADLINE, "rloo"])  # PPO where the installed TRL has it


@pytest.fixture(scope="session")
def headline_sweep(tmp_path_factory) -> Sweep:
    """`make smoke METHODS=grpo,ppo,dpo,kto,orpo` on the embedded model, its runs in one process (the
    per-run process is tested in test_reliability), unscored and without W&B (the tiny sweep has both;
    test_the_adapter_alone_loads... scores one of these adapters)."""
    return sweep(
        tmp_path_factory.mktemp("headline"), f"method={','.join(EMBEDDED)}", "eval=none", "logger=none", "isolate=false"
    )


@pytest.mark.parametrize("name", EMBEDDED)
def test_method_trains_only_its_adapter(headline_sweep, name):
    """On the embedded model every headline method's adapter moves (RLOO's too: with GRPO, the methods
    whose only signal is a reward difference, which a random model never gives), and nothing else does."""
    run = headline_sweep.run(name)
    assert run["train/trainable_tensors_changed"] == run["train/trainable_tensors"] > 0
    assert_trains_only_its_adapter(run, hidden=576, layers=30)


def test_the_users_smoke_sweep_of_the_headline_exits_zero_with_its_report(headline_sweep):
    assert headline_sweep.returncode == 0, headline_sweep.stderr[-3000:]
    summary = (headline_sweep.folder / "summary.md").read_text()
    assert all(f"| {name} " in summary for name in on_this_trl(HEADLINE))


def test_merged_rollouts_train_grpo_and_say_so(compose, tmp_path):
    """train.rollout=merged: GRPO's rollouts come from the merged adapter (gen/path), the adapter trains,
    and the frozen base moves only by the rounding of merging and unmerging."""
    from bench.run.runner import run

    record = run(
        compose(
            "method=grpo",
            "train.rollout=merged",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            output_dir=tmp_path,
        )
    )
    assert record["status"] == "success", record.get("error")
    assert record["gen/path"] == "merged" and record["mem/max_kv_cache_bytes"] > 0
    assert record["train/trainable_tensors_changed"] == record["train/trainable_tensors"]
    assert record["train/frozen_max_rel_change"] < 1e-5


HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_a_saved_adapter_names_its_base_by_hub_id(headline_sweep):
    """(The card's results section: test_smoke.py's test_a_saved_adapter_has_a_model_card_with_its_results.)"""
    from huggingface_hub import ModelCard

    record = headline_sweep.run("dpo")
    adapter = record["_dir"] / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_ID
    card = ModelCard.load(adapter / "README.md")
    assert card.data.base_model == HUB_ID and card.data.library_name == "peft"
    assert card.data.to_dict()["base_model_source"].startswith("embedded:smollm2-135m-instruct")
    assert "dpo" in card.data.tags and "`params/trainable` | 4884480" in card.text


@pytest.mark.slow
def test_the_adapter_alone_loads_where_its_base_is_available_under_its_hub_id(headline_sweep, tmp_path):
    """Another machine: the adapter folder only, the base in a Hugging Face cache under its hub id (a
    stand-in for a download: the converted weights in the hub cache's layout), no embedded package used."""
    cache = Path(os.environ["RFT_BENCH_CACHE"])  # the session's, where the sweep converted the model
    moved = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(headline_sweep.run("dpo")["_dir"] / "adapter", moved)
    (model,) = [p for p in (cache / "models").glob("smollm2-*") if p.is_dir()]
    repo = tmp_path / "hf" / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in model.iterdir():
        if not f.name.startswith("."):
            (snapshot / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    env = os.environ | {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "RFT_BENCH_CACHE": str(tmp_path / "empty"),
    }

    proc = subprocess.run(
        [sys.executable, "-m", "bench.recipe.evaluate", str(moved), "eval.limit=2", "eval.max_gen_toks=16"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Converting" not in proc.stderr and not (tmp_path / "empty" / "models").exists()  # the hub id, not embedded
    assert json.loads((moved.parent / "eval.json").read_text())["eval/n"] == 2

    (tasks,) = (tmp_path / "empty" / "lm_eval_tasks").iterdir()  # the scoring's own lm-eval task (YAML and data)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={HUB_ID},peft={moved}",
            "--tasks",
            tasks.name.rsplit("-", 1)[0],
            "--include_path",
            str(tasks),
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=16",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tasks.name.rsplit("-", 1)[0] in proc.stdout and "exact_match" in proc.stdout
