"""init_from (bench/recipe/pipeline.py): which first stage a run starts from, what it refuses, how it is hashed
and charged. These read run folders only; the two stages trained for real are in test_smoke.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench import BenchError
from bench.config import stages
from bench.config.hashing import recorded_hash
from tests.conftest import REPO


def _run_folder(root, name, *, status="success", model="embedded:smollm2-135m-instruct", weights="adapter", **record):
    folder = root / name
    (folder / weights).mkdir(parents=True)
    if weights == "adapter":
        (folder / weights / "adapter_config.json").write_text("{}")
    (folder / "metrics.json").write_text(json.dumps({"status": status, "method": name.split("_")[1], **record}))
    cfg = {"model": {"name_or_path": model, "revision": None, "weights": "pretrained"}, "cache_dir": str(root)}
    (folder / "config_resolved.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return folder


def test_no_init_from_hashes_as_before_the_key_existed(compose):
    cfg = compose("method=dpo")
    assert cfg.init_from is None
    without = cfg.copy()
    del without["init_from"]
    assert recorded_hash(cfg) == recorded_hash(without)


def test_a_glob_names_the_one_first_stage_of_this_seed(compose, tmp_path):
    for seed in (0, 1):
        _run_folder(tmp_path, f"{seed}_sft_seed{seed}", config_hash=f"h{seed}")
    _run_folder(tmp_path, "2_orpo_seed0")
    cfg = compose("method=dpo", f"init_from={tmp_path}/*_sft_seed1")
    stage = stages.load(cfg)
    assert stage.folder == tmp_path / "1_sft_seed1" and stage.is_adapter and stage.methods == ["sft"]
    head = stages.header_of(cfg, stage)
    assert head["method"] == "sft→dpo" and head["pipeline/stages"] == ["sft", "dpo"]
    # Hashed by what the first stage was, not where it lies: a rerun first stage reruns this one.
    assert stages.identity(cfg) == "run:h1"
    other = compose("method=dpo", f"init_from={tmp_path}/*_sft_seed0")
    assert recorded_hash(cfg) != recorded_hash(other)


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("*_nothing_*", "names no run folder"),
        ("*_seed0", "matches 2 run folders"),
    ],
)
def test_init_from_must_name_exactly_one_run(compose, tmp_path, pattern, message):
    _run_folder(tmp_path, "0_sft_seed0")
    _run_folder(tmp_path, "1_orpo_seed0")
    with pytest.raises(BenchError, match=message):
        stages.load(compose("method=dpo", f"init_from={tmp_path}/{pattern}"))


def test_init_from_refuses_an_unfinished_run_or_another_base(compose, tmp_path):
    _run_folder(tmp_path, "0_sft_seed0", status="failed", error="Diverged at step 2")
    with pytest.raises(BenchError, match="did not finish.*Diverged"):
        stages.load(compose("method=dpo", f"init_from={tmp_path}/0_sft_seed0"))
    _run_folder(tmp_path, "1_sft_seed1", model="Qwen/Qwen3-0.6B")
    with pytest.raises(BenchError, match="same base"):
        stages.load(compose("method=dpo", f"init_from={tmp_path}/1_sft_seed1"))


def test_validation_fails_on_a_bad_init_from_before_any_model_loads(compose, tmp_path):
    from bench.config.validation import validate
    from bench.system.runtime import resolve_runtime

    with pytest.raises(BenchError, match="names no run folder"):
        validate(compose("method=dpo", f"init_from={tmp_path}/missing"), resolve_runtime("cpu"))


def test_a_pipeline_is_charged_every_stage(compose, tmp_path):
    _run_folder(tmp_path, "0_sft_seed0", **{"time/full_s": 100.0, "sys/peak_mem_bytes": 3_000, "eval/accuracy": 0.4})
    cfg = compose("method=dpo", f"init_from={tmp_path}/0_sft_seed0")
    second = {"time/full_s": 50.0, "sys/peak_mem_bytes": 2_000, "pipeline/merge_s": 7.0, "pipeline/merge_cached": True}
    charged = stages.charge(stages.load(cfg), second)
    # The merge was cached: its original cost is charged as well, as a cached data build is.
    assert charged["pipeline/full_s"] == 157.0
    assert charged["pipeline/peak_mem_bytes"] == 3_000 and charged["pipeline/from_accuracy"] == 0.4
    # A third stage: the second's pipeline totals carry the first's.
    _run_folder(
        tmp_path,
        "1_dpo_seed0",
        **{
            "pipeline/stages": ["sft", "dpo"],
            "pipeline/full_s": 157.0,
            "pipeline/peak_mem_bytes": 3_000,
            "time/full_s": 50.0,
        },
    )
    third = compose("method=grpo", f"init_from={tmp_path}/1_dpo_seed0")
    assert stages.header_of(third, stages.load(third))["method"] == "sft→dpo→grpo"
    assert stages.charge(stages.load(third), {"time/full_s": 10.0, "sys/peak_mem_bytes": 4_000}) == {
        "pipeline/full_s": 167.0,
        "pipeline/peak_mem_bytes": 4_000,
        "pipeline/from_config_hash": None,
    }
    assert stages.charge(stages.load(compose("method=dpo")), second) == {}


def test_reuse_copies_a_finished_identical_run_instead_of_training(compose, tmp_path):
    """reuse=[DIR]: a run whose config hash equals a finished run's in DIR is that run, copied (no
    training: this test would take minutes otherwise); another config is not matched."""
    from bench.run.runner import run

    cfg = compose("method=dpo", "debug=smoke", "logger=none", output_dir=tmp_path / "new")
    OmegaConf.resolve(cfg)
    source = tmp_path / "old" / "0_dpo_seed0"
    (source / "adapter").mkdir(parents=True)
    (source / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    record = {
        "status": "success",
        "config_hash": recorded_hash(cfg),
        "method": "dpo",
        "eval/accuracy": 0.5,
        "train/weights_dir": "adapter",
        "git/commit": "abc",
    }
    (source / "metrics.json").write_text(json.dumps(record))
    cfg.reuse = [str(tmp_path / "old")]
    got = run(cfg)
    assert got["reused_from"] == str(source) and got["eval/accuracy"] == 0.5 and got["git/commit"] == "abc"
    assert (
        got["reused/weights"]
        and (tmp_path / "new" / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    )
    assert json.loads((tmp_path / "new" / "metrics.json").read_text())["output_dir"] == str(tmp_path / "new")
    # reuse is where runs come from, not what they compute: the hash is the same with or without it.
    assert recorded_hash(cfg) == record["config_hash"]
    from bench.run.resume import reusable

    other = compose("method=dpo", "debug=smoke", "seed=1")
    OmegaConf.resolve(other)
    assert reusable([tmp_path / "old"], recorded_hash(other)) is None


def test_label_noise_zero_hashes_as_no_label_noise(compose):
    assert recorded_hash(compose("method=dpo", "+data.label_noise=0.0")) == recorded_hash(compose("method=dpo"))
    assert recorded_hash(compose("method=dpo", "+data.label_noise=0.2")) != recorded_hash(compose("method=dpo"))


ORPO_SWEEP = "results/reference/claims-smollm2-arithmetic-cpu/orpo_pipeline"


@pytest.mark.parametrize(
    "overrides, run",
    [
        (["experiment=tuned", "method=dpo", "seed=0"], "tuning-headline-smollm2-arithmetic-cpu/final/6_dpo_seed0"),
        (
            ["experiment=claims/low_rank", "method=grpo", "seed=0", "peft.r=4"],
            "claims-smollm2-arithmetic-cpu/low_rank/3_grpo_seed0",
        ),
        # Tuned mode entries (`sft+full`, `sft+lora`) hash through the values they set.
        (
            ["experiment=claims/lora_memory", "method=sft", "seed=1", "peft=none"],
            "claims-smollm2-arithmetic-cpu/lora_memory/16_sft_seed1",
        ),
        (
            ["experiment=claims/lora_memory", "method=dpo", "seed=1"],
            "claims-smollm2-arithmetic-cpu/lora_memory/7_dpo_seed1",
        ),
        # A pipeline's tuned init_from follows the sweep dir: a relative and an absolute spelling hash alike.
        *[
            (
                ["experiment=claims/orpo_pipeline", f"method={m}", "seed=1", f"hydra.sweep.dir={d}"],
                f"claims-smollm2-arithmetic-cpu/orpo_pipeline/{n}_{m}_seed1",
            )
            for m, n in (("sft", 3), ("dpo", 5))
            for d in (ORPO_SWEEP, REPO / ORPO_SWEEP)
        ],
    ],
)
def test_committed_runs_keep_their_config_hash(compose, overrides, run):
    """Later keys and changed defaults (eval.path, eval.batch_size) leave the tuned study's and the claims'
    committed runs with the hash they were recorded with: their sweeps resume and reuse them."""
    record = json.loads((Path(__file__).parents[1] / "results/reference" / run / "metrics.json").read_text())
    assert recorded_hash(compose(*overrides)) == record["config_hash"]


def test_scoring_path_merges_a_lora_unless_its_base_is_quantized(compose, tmp_path):
    from bench.recipe.evaluate import scoring_path

    adapter, full = tmp_path / "adapter", tmp_path / "model"
    adapter.mkdir(), full.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert scoring_path(compose(), adapter) == "merged"  # the default
    assert scoring_path(compose("eval.path=adapter"), adapter) == "adapter"
    assert scoring_path(compose("eval.path=adapter"), adapter, merge=True) == "merged"  # the CLI's --merge
    assert scoring_path(compose("quant=nf4"), adapter) == "adapter"  # merging would round into 4 bits
    assert scoring_path(compose(), full) == "full"


def test_a_first_stage_without_weights_is_planned_and_refused_where_a_run_needs_them(compose, tmp_path):
    """A finished first stage whose weights were cleaned (as in the committed sweeps) still gives its second
    stage a plan and a hash, so a finished second stage resumes; training on it is refused by name, in setup
    before any model loads."""
    from bench.recipe import pipeline
    from bench.recipe.plan import make

    folder = _run_folder(tmp_path, "0_sft_seed0", model="embedded:tiny-llama", config_hash="h0")
    shutil.rmtree(folder / "adapter")
    plan = make(compose("method=dpo", "model=tiny", f"init_from={folder}", output_dir=tmp_path / "second"))
    assert plan.stage.weights is None and plan.header["method"] == "sft→dpo"
    with pytest.raises(BenchError, match="0_sft_seed0 has no adapter/ or model/"):
        pipeline.ensure(plan.start)
