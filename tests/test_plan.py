"""bench.config.plan: a run resolved once, and the config that trains is the config that was validated."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bench import BenchError
from bench.config import history
from bench.config.hashing import config_hash
from bench.config.plan import resolve
from bench.system.runtime import resolve_runtime
from tests.conftest import needs

CPU = resolve_runtime("cpu", "auto")


def test_the_plan_holds_what_every_later_phase_reads(compose, tmp_path):
    cfg = compose("method=dpo", "model=tiny", "method.args.beta=0.2", output_dir=tmp_path)
    plan = resolve(cfg, CPU)
    assert plan.runtime is CPU and plan.method.name == "dpo" and plan.stage is None
    assert plan.trainer_config.beta == 0.2 and plan.audit.exact > 0
    assert plan.config_hash == config_hash(cfg)  # the plan's hash is the resume check's
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
        resolve(compose(f"method={method}", "model=tiny", "++method.args.reward_weights=[1.0]", output_dir=tmp_path), CPU)


@needs("ppo")
def test_ppo_reward_model_config_is_validated_with_the_policy(compose, tmp_path):
    cfg = compose("method=ppo", "model=tiny", "method.reward=model", output_dir=tmp_path)
    plan = resolve(cfg, CPU)
    reward = plan.configs["reward_model"]
    assert type(reward).__name__ == "RewardConfig" and reward.output_dir.endswith("/reward_model")
    assert reward.per_device_train_batch_size == plan.trainer_config.per_device_train_batch_size
    assert resolve(compose("method=ppo", "model=tiny", output_dir=tmp_path), CPU).configs == {}  # reward=rule
    bad = compose("method=ppo", "model=tiny", "method.reward=model", "++method.reward_model.args.betta=1", output_dir=tmp_path)
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
