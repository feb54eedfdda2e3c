"""bench.recipe.plan: a run resolved once, at its top, and the config that trains is the config that was validated."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench import BenchError
from bench.config import hashing, history
from bench.config.hashing import recorded_hash
from bench.recipe.plan import make as resolve
from bench.system.runtime import resolve_runtime
from tests.conftest import needs

CPU = resolve_runtime("cpu", "auto")
REPO = Path(__file__).resolve().parents[1]


def test_the_plan_holds_what_every_later_phase_reads(compose, tmp_path):
    cfg = compose("method=dpo", "model=tiny", "method.args.beta=0.2", output_dir=tmp_path)
    plan = resolve(cfg, CPU)
    assert plan.runtime is CPU and plan.method.name == "dpo" and plan.stage is None
    assert plan.trainer_config.beta == 0.2 and plan.audit.exact > 0
    assert plan.config_hash == recorded_hash(cfg)  # what its recorded config hashes to, once recorded
    assert plan.header["config_hash"] == plan.config_hash and plan.header["status"] == "running"
    assert plan.task.name == "arithmetic" and plan.peft.r == cfg.peft.r and plan.prompt_budget == 432
    assert plan.start.path == plan.start.origin and plan.start.merges == ()
    assert plan.output_dir == tmp_path
    assert "beta" in plan.declared  # the method's YAML args are declared settings


@pytest.mark.parametrize("method", ["grpo", "rloo", "online_dpo"])
def test_the_task_reward_weights_are_in_the_validated_config(compose, tmp_path, method):
    """GRPO, RLOO and online DPO optimise the task's weighted rewards: the weights are set before validation, not
    written into the config by the adapter afterwards."""
    cfg = compose(f"method={method}", "model=tiny", "task.reward_weights.format=0.25", output_dir=tmp_path)
    weights = list(OmegaConf.to_container(cfg.task.reward_weights).values())
    assert resolve(cfg, CPU).trainer_config.reward_weights == weights and 0.25 in weights
    with pytest.raises(BenchError, match="which the harness owns.*task.reward_weights"):
        resolve(
            compose(f"method={method}", "model=tiny", "++method.args.reward_weights=[1.0]", output_dir=tmp_path), CPU
        )


@needs("ppo")
def test_ppo_reward_model_config_is_validated_with_the_policy(compose, tmp_path):
    cfg = compose("method=ppo", "model=tiny", "method.reward=model", output_dir=tmp_path)
    plan = resolve(cfg, CPU)
    reward = plan.configs["reward_model"]
    assert type(reward).__name__ == "RewardConfig" and reward.output_dir.endswith("/reward_model")
    assert reward.per_device_train_batch_size == plan.trainer_config.per_device_train_batch_size
    assert resolve(compose("method=ppo", "model=tiny", output_dir=tmp_path), CPU).configs == {}  # reward=rule
    bad = compose(
        "method=ppo", "model=tiny", "method.reward=model", "++method.reward_model.args.betta=1", output_dir=tmp_path
    )
    with pytest.raises(BenchError, match=r"ppo \(reward_model\): RewardConfig has no field"):
        resolve(bad, CPU)


def test_a_recorded_config_gets_the_values_its_run_had_for_later_keys(compose):
    """A config recorded before eval.path, the validation split and the prompt budget existed reads as
    that run ran: unmerged scoring, no validation split, the 512-token limit."""
    recorded = OmegaConf.to_container(compose())
    del recorded["eval"]["path"], recorded["task"]["num_validation"], recorded["train"]["max_prompt_length"]
    done = history.complete(recorded)
    assert done.eval.path == "adapter" and done.task.num_validation == 0 and done.train.max_prompt_length == 432
    assert done.eval.split == "test" and done.data.label_noise == 0.0  # present or hash-neutral: as they are
    assert history.complete(compose("eval.path=merged")).eval.path == "merged"  # a present key is left alone


@pytest.mark.parametrize("method", ["dpo", pytest.param("ppo", marks=needs("ppo"))])
def test_the_plan_travels_to_an_isolated_run_as_it_is(compose, tmp_path, method):
    """An isolated run's process receives the pickled plan (spawn pickles its arguments) and resolves
    nothing again: what it unpickles is the plan, adapter and TRL configs included. PPO's adapter holds a
    lambda, so the adapter travels by its registered name."""
    plan = resolve(compose(f"method={method}", "model=tiny", output_dir=tmp_path), CPU)
    again = pickle.loads(pickle.dumps(plan))
    assert again.method is plan.method  # the registry's own entry
    assert again.trainer_config.to_dict() == plan.trainer_config.to_dict()
    assert again.config_hash == plan.config_hash and again.header == plan.header and again.start == plan.start
    assert again.task.name == plan.task.name and again.task.prompts(3) == plan.task.prompts(3)


def test_a_plan_travels_without_the_gpu_count_the_sweeps_process_saw(compose, tmp_path):
    """The TRL config caches the device count of the process that built it (the sweep's: every GPU of the
    node); the pinned run process must count its own, or the Trainer multiplies the batch by the node's GPUs."""
    plan = resolve(compose("method=dpo", "model=tiny", output_dir=tmp_path), CPU)
    assert plan.trainer_config.n_gpu == 0  # this machine: no GPU
    vars(plan.trainer_config)["_n_gpu"] = 8  # as an 8-GPU node's sweep process caches it
    again = pickle.loads(pickle.dumps(plan))
    per_device = again.trainer_config.per_device_train_batch_size
    assert again.trainer_config.n_gpu == 0 and again.trainer_config.train_batch_size == per_device


def test_a_task_whose_rewards_are_closures_is_built_again_in_the_run_process(compose, tmp_path):
    """reasoning_gym's reward closes over its generated entries and does not pickle: an isolated run failed
    before it started, its record left at "running". That task travels by its config and is built again."""
    overrides = (
        "method=grpo",
        "model=tiny",
        "task=reasoning_gym",
        "task.num_train=16",
        "task.num_test=8",
        "debug=smoke",
    )
    plan = resolve(compose(*overrides, output_dir=tmp_path), CPU)
    again = pickle.loads(pickle.dumps(plan))
    assert again.validated.task is again.task and again.task.prompts(3) == plan.task.prompts(3)
    rows = [again.task.train[0].fields]
    assert again.task.score([again.task.train[0].gold], rows) == plan.task.score([plan.task.train[0].gold], rows)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short run of the tiny model, in this process, with config_hash counted: SFT whose learning rate
    method.args sets (2e-4) over train.args' (1e-5)."""
    from bench.config.compose import compose
    from bench.run.runner import run

    out = tmp_path_factory.mktemp("run")
    cfg = compose(
        [
            "method=sft",
            "model=tiny",
            "debug=smoke",
            "eval=none",
            "logger=none",
            "isolate=false",
            "train.args.learning_rate=1e-5",
            "++method.args.learning_rate=2e-4",
            f"output_dir={out}",
        ]
    )
    calls = []

    class Counting:  # config_hash's own digest, counted however the function was imported
        def sha256(self, data):
            calls.append(data)
            return hashlib.sha256(data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "hashlib", Counting())
        record = run(cfg)
    return out, record, len(calls)


def test_a_run_hashes_its_config_once(trained_run):
    out, record, calls = trained_run
    assert record["status"] == "success", record.get("error")
    assert calls == 1  # the plan's: the resume check, the header and the record all read it
    assert json.loads((out / "metrics.json").read_text())["config_hash"] == record["config_hash"]


def test_the_model_card_names_the_learning_rate_that_trained_the_adapter(trained_run):
    out, record, _ = trained_run
    assert record["status"] == "success", record.get("error")
    card = (out / "adapter" / "README.md").read_text()
    assert "learning rate 0.0002" in card and "1e-05" not in card


@pytest.mark.parametrize(
    "sweep, run_name, overrides",
    [
        ("low_rank", "3_grpo_seed0", ["experiment=claims/low_rank", "method=grpo", "seed=0", "peft.r=4"]),
        # A second stage whose first stage's weights are not committed: planned all the same, so it resumes.
        ("orpo_pipeline", "5_dpo_seed1", ["experiment=claims/orpo_pipeline", "method=dpo", "seed=1"]),
    ],
)
def test_a_committed_sweep_resumes_without_training(compose, tmp_path, monkeypatch, sweep, run_name, overrides):
    """A committed reference sweep, planned again from its overrides, is its records: each found by the
    plan's hash and returned as it is, nothing trained, the record's bytes untouched."""
    import bench.recipe.train
    from bench.run.runner import run

    # A copy at the same path relative to the working directory, which a tuned init_from is hashed by.
    folder = Path("results/reference/claims-smollm2-arithmetic-cpu") / sweep
    shutil.copytree(REPO / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    before = (folder / run_name / "metrics.json").read_bytes()
    monkeypatch.setattr(bench.recipe.train, "train", lambda plan: pytest.fail("a finished run was trained again"))
    cfg = compose(*overrides, "isolate=false", f"hydra.sweep.dir={folder}", output_dir=folder / run_name)
    record = run(cfg)
    assert record == json.loads(before) and record["status"] == "success", record.get("error")
    assert (folder / run_name / "metrics.json").read_bytes() == before
