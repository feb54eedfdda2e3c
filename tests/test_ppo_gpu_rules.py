"""PPO under the rules every other method's trainer follows on a GPU, checked on the tiny model on CPU:
the run's mixed precision (autocast), activation checkpointing when asked, the value model's FLOPs in
MFU, and no reward adapter merged into 16-bit weights. TRL 1.12's PPOTrainer runs its own loop and
builds its own accelerator, so none of these came from the Trainer as they do for the others."""

from __future__ import annotations

import pytest
import torch

from bench import BenchError
from bench.system.runtime import Runtime
from tests.conftest import needs

pytestmark = needs("ppo")

BF16 = Runtime(device="cpu", dtype=torch.bfloat16, precision="bf16")


def _build(folder, *overrides: str):
    """PPO's trainer built as a bf16 run builds it (nothing trained): (trainer, policy)."""
    from bench.config.compose import compose
    from bench.recipe.plan import make
    from bench.recipe.train import build, setup

    cfg = compose(["method=ppo", "model=tiny", "debug=smoke", "logger=none", *overrides])
    cfg.output_dir = str(folder)
    plan = make(cfg, BF16)
    trainer, policy, _, _ = build(plan, setup(plan), [])
    return trainer, policy


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("ppo"), "train.args.activation_checkpointing=true")


def _rollout_batch(trainer) -> torch.Tensor:
    return torch.tensor([trainer.train_dataset[0]["input_ids"]])


def test_ppo_computes_under_the_runs_mixed_precision(built):
    """TRL 1.12 builds PPO's accelerator without a mixed precision, and transformers 5 no longer passes bf16 on
    through the environment: PPO's log-softmax, ratios and KL ran in bf16 without autocast."""
    trainer, _ = built
    assert trainer.accelerator.mixed_precision == "bf16"
    # The training forward (policy and value together) runs under autocast and hands back fp32, as the
    # Trainer's prepared model does for every other method.
    ids = _rollout_batch(trainer)
    output, values = trainer.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    assert output.logits.dtype == torch.float32 and values.dtype == torch.float32


def test_ppo_rollouts_score_under_the_same_autocast_as_its_training_forward(tmp_path):
    """Under bf16 with peft=none, PPO's rollouts ran outside autocast: the fp32 policy's old log-probabilities
    and its bf16 reference's differed before any step (up to 0.058 on the tiny model), and the training
    forward disagreed with the rollout's (0.002). Measured with TRL's own rollout functions."""
    from transformers import GenerationConfig
    from trl.experimental.ppo.ppo_trainer import batch_generation, forward
    from trl.trainer.utils import selective_log_softmax

    trainer, policy = _build(tmp_path, "peft=none")
    pad = trainer.processing_class.pad_token_id
    rows = [trainer.train_dataset[i]["input_ids"] for i in range(2)]
    width = max(map(len, rows))
    queries = torch.tensor([[pad] * (width - len(row)) + row for row in rows])
    with torch.no_grad():
        generated, logits = batch_generation(
            policy, queries, 2, pad, GenerationConfig(max_new_tokens=6, do_sample=False)
        )
        response = generated[:, width:]
        old = selective_log_softmax(logits, response)  # as PPO keeps them from generation
        ref = selective_log_softmax(forward(trainer.ref_model, generated, pad).logits[:, width - 1 : -1], response)
        new = selective_log_softmax(forward(trainer.model, generated, pad)[0].logits[:, width - 1 : -1], response)
    assert ref.dtype == old.dtype == torch.float32
    assert (new - old).abs().max() < 5e-4  # the policy's ratio starts at 1
    # Left: the reference's bf16 norms and residual stream against the fp32 policy's, as for DPO's reference.
    assert (ref - old).abs().max() < 0.02


def test_ppo_checkpoints_activations_when_asked_and_still_generates_with_its_cache(built):
    """TRL's PPO defined activation_checkpointing but never turned it on; turned on for the policy and the value
    model, and off while the policy generates (in train mode a checkpointed layer drops its KV cache)."""
    trainer, policy = built
    assert policy.is_activation_checkpointing and trainer.value_model.is_activation_checkpointing
    ids = _rollout_batch(trainer)
    settings = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    policy.train()
    with torch.no_grad():
        generated = policy.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **settings)
        assert policy.is_activation_checkpointing  # back on after generating
        policy.eval()  # checkpointing applies in train mode only: this is generation as it should be
        expected = policy.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **settings)
    assert torch.equal(generated, expected)


def test_ppo_counts_its_value_models_forward_and_backward(built):
    """PPO's MFU counted the policy's tokens only: the value model scores every rollout and trains beside it."""
    from bench.measure.perf import TokenKinds, other_models

    trainer, _ = built
    assert other_models(trainer) == {"value": trainer.value_model}
    kinds = TokenKinds(trainer.value_model)
    try:
        ids = _rollout_batch(trainer)
        trainer.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        assert kinds.tokens["trained"] == ids.numel()  # the training forward reaches the value model's embeddings
    finally:
        kinds.close()


def test_mfu_counts_the_value_models_forward_and_backward(tmp_path, monkeypatch):
    """The FLOP rule over the policy and the value model: the value model's rollout forward costs 2N_v a
    token and its training forward and backward 4N_v + 2T_v, as the policy's do."""
    from bench.measure import perf

    monkeypatch.setattr(perf, "_matmul_flops_per_s", lambda device, dtype, budget_s=1.5: 100e9)
    value = perf.Counted(params=900, trainable=20, tokens={"trained": 3, "forward": 3, "generated": 0})
    out = perf.perf_metrics(
        params=1000,
        trainable=10,
        tokens={"trained": 3, "forward": 5, "generated": 7},
        train_s=2.0,
        device="cpu",
        dtype=torch.float32,
        cache_dir=tmp_path,
        others={"value": value},
    )
    policy_flops = 3 * 4020 + (5 + 7) * 2000
    value_flops = 3 * (4 * 900 + 2 * 20) + 3 * 2 * 900
    assert out["perf/value_flops"] == value_flops and out["perf/value_params"] == 900
    assert out["perf/flops"] == policy_flops + value_flops
    assert out["perf/flops_per_s"] == pytest.approx((policy_flops + value_flops) / 2.0)  # what MFU divides


def test_a_trained_reward_model_is_not_merged_into_16_bit_weights(compose, tmp_path):
    """Merging the reward adapter into bf16 weights rounds a small trained delta away, and merging in fp32 then
    casting rounds it the same way: refused at validation, before any weights load."""
    from bench.config.validation import validate

    cfg = compose("method=ppo", "model=tiny", "method.reward=model", output_dir=tmp_path)
    with pytest.raises(BenchError, match="method.reward=model at precision=bf16.*precision=fp32"):
        validate(cfg, BF16)
    fp16 = Runtime(device="cuda", dtype=torch.float16, precision="fp16", index=0, gpus_visible=1)
    with pytest.raises(BenchError, match="precision=fp16"):
        validate(cfg, fp16)
