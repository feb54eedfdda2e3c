"""PPO (trl.experimental.ppo.PPOTrainer): online RL with a value model and a reward model.

The reward is the task's own rule by default (wrapped as a reward model). `method.reward=model`
runs the classic RLHF pipeline instead: first a reward model trained with trl.RewardTrainer on the
same preference pairs DPO uses, then PPO against it. The value model is a LoRA-adapted copy of the
base (plus its score head) in the shared fine-tuning mode: with peft=none a full trainable copy.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from bench.system import devices
from bench.tasks.reward_model import RuleRewardModel
from methods import MemoryFacts, RunContext, register

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel, Trainer
    from trl.experimental.ppo import PPOConfig

# What the reward model's trainer takes from the policy's settings, so both see the same budget.
_SHARED = (
    "output_dir",
    "seed",
    "bf16",
    "fp16",
    "use_cpu",
    "report_to",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "logging_steps",
    "disable_tqdm",
    "dataloader_num_workers",
)


def train_reward_model(ctx: RunContext):
    """RLHF step one: a LoRA reward model on the preference pairs, merged for fast scoring."""
    from peft import PeftModel
    from trl import RewardTrainer

    tokenizer, pairs = ctx.tokenizer, ctx.data("preference")
    # Plain text with the chat-formatted prompt: the trainer appends EOS, so the reward is read at the
    # same end-of-turn token where PPO reads it.
    rows = pairs.map(
        lambda row: {
            "prompt": tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False),
            "chosen": row["chosen"][-1]["content"],
            "rejected": row["rejected"][-1]["content"],
        }
    )
    trainer = RewardTrainer(
        model=ctx.load_model(head="value"),
        args=ctx.configs["reward_model"],
        train_dataset=rows,
        processing_class=tokenizer,
    )
    ctx.check_rows(len(rows), trainer)  # RewardTrainer filters pairs over its max_length: never silently
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    ctx.extra.update(
        reward_model_steps=trainer.state.global_step, reward_model_final_loss=losses[-1] if losses else None
    )
    trained = trainer.model
    if isinstance(trained, PeftModel):  # a LoRA reward model: merged for fast scoring; peft=none trains it whole
        trained = trained.merge_and_unload()
    model = cast("PreTrainedModel", trained).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.requires_grad_(False)


def side_configs(args, method_cfg) -> dict:
    """RLHF's reward model (method.reward=model): a RewardConfig with the policy's budget and flags
    (`_SHARED`, read from its validated PPOConfig) and `method.reward_model.args`, validated with it."""
    if method_cfg["reward"] != "model":
        return {}
    shared = {k: getattr(args, k) for k in _SHARED}
    shared["output_dir"] = f"{args.output_dir}/reward_model"
    own = dict((method_cfg.get("reward_model") or {}).get("args") or {})
    return {"reward_model": ("trl:RewardConfig", {**shared, "save_strategy": "no", **own})}


def policy(trainer: Trainer) -> nn.Module:
    """PPO's trainer holds a PolicyAndValueWrapper as its model: the policy is inside."""
    return cast("nn.Module", trainer.model.policy)  # type: ignore[union-attr]  # never None once built


# PPOConfig has no top_p (its trainer samples with top_p=1.0): the recorded fair/top_p shows it.
SAMPLING = {"temperature": "temperature", "max_new_tokens": "response_length"}


@register(
    "ppo",
    config="trl.experimental.ppo:PPOConfig",
    data="prompt_ids",
    policy=policy,
    sampling=SAMPLING,
    needs="TRL 1.12 (1.13 removed PPO, trl#7020)",
    side_configs=side_configs,
    memory=MemoryFacts(reference=True, value_model=True),
)
def build(ctx: RunContext):
    from trl.experimental.ppo import PPOTrainer

    reward = ctx.method_cfg["reward"]
    ctx.extra["reward"] = reward
    if reward == "rule":
        reward_model = RuleRewardModel(ctx.tokenizer, list(ctx.dataset["input_ids"]), ctx.fields, ctx.score)
    elif reward == "model":
        reward_model = train_reward_model(ctx)
    else:
        raise ValueError(f"method.reward={reward!r}: use 'rule' (the task's reward) or 'model' (RewardTrainer first)")
    args = cast("PPOConfig", ctx.args)  # the config class this method registered
    with accelerate_mixed_precision(args.mixed_precision):
        trainer = PPOTrainer(
            args=args,
            processing_class=ctx.tokenizer,
            model=ctx.model,
            # With a peft_config the reference is the policy with its adapter disabled; without one
            # (peft=none) TRL makes a frozen copy.
            ref_model=None,
            reward_model=reward_model,  # type: ignore[arg-type,unused-ignore]  # RuleRewardModel has what PPO calls of a model
            train_dataset=ctx.dataset,  # input_ids only: PPO's collator pads nothing else
            value_model=ctx.load_model(head="value"),
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
        )
    if trainer.accelerator.mixed_precision != ctx.args.mixed_precision:
        raise RuntimeError(
            f"PPO's accelerator runs mixed precision {trainer.accelerator.mixed_precision!r}, its config "
            f"{ctx.args.mixed_precision!r}: its losses would not be computed as every other method's are."
        )
    autocast_rollouts(trainer)
    if ctx.args.activation_checkpointing:
        checkpoint_activations(trainer)
    return trainer


@contextmanager
def accelerate_mixed_precision(precision: str):
    """Build PPO's accelerator with the run's mixed precision, as the Trainer builds every other method's.

    TRL 1.12's PPOTrainer makes `Accelerator(gradient_accumulation_steps=...)` with no mixed precision, so
    accelerate reads ACCELERATE_MIXED_PRECISION, which transformers 5 no longer exports from `bf16=True`.
    Without it PPO's forwards run without autocast: under bf16 its log-softmax, ratios and KL would be bf16
    where the other methods get fp32 outputs, and a full fine-tune's fp32 policy would compute in fp32
    against its bf16 reference. The variable is set only while the trainer is built. accelerate keeps one
    state per process and reads the variable only when it makes that state, so a state an earlier run of
    this process left in another precision is dropped first (its trainer is done).
    """
    from accelerate.state import AcceleratorState, is_initialized

    if is_initialized() and AcceleratorState().mixed_precision != precision:
        AcceleratorState._reset_state()
    with devices.environment({"ACCELERATE_MIXED_PRECISION": precision}):
        yield


def autocast_rollouts(trainer) -> None:
    """Run PPO's rollout forwards under the same autocast as its training forward.

    The accelerator wraps only the forward of the model it prepared (policy and value together), which PPO
    calls to train. Its rollouts call the models inside: the policy generates, the reference and the value
    model score. Left outside autocast they compute in the weights' own dtypes, so under bf16 with peft=none
    the fp32 policy and its bf16 reference would differ before any step, and the old log-probabilities
    would come from another computation than the new ones. Each such model's forward is wrapped the way
    accelerate wraps a prepared one (autocast, outputs back in fp32); nothing changes at fp32.
    """
    from accelerate.utils import convert_outputs_to_fp32, get_mixed_precision_context_manager

    accelerator = trainer.accelerator
    if not accelerator.native_amp:
        return
    wrapper = accelerator.unwrap_model(trainer.model)
    policy = wrapper.policy
    # The transformers model whose forward generate() and the adapter-disabled reference call, and the
    # value model's backbone, which PPO calls directly (TRL's get_reward and the training wrapper alike).
    models = [policy.get_base_model() if hasattr(policy, "get_base_model") else policy, wrapper.critic_backbone]
    if trainer.ref_model is not None:  # peft=none: TRL's frozen copy
        models.append(trainer.ref_model)
    for model in models:
        autocast = get_mixed_precision_context_manager(accelerator.native_amp, accelerator.autocast_handler)
        # The value backbone's last hidden state feeds the fp32 score head, so all its outputs come back in
        # fp32 as accelerate gives them. The policy's and the reference's only read output is the logits:
        # TRL asks them for every hidden state too, and fp32 copies of those would be a transient of
        # (layers + 1) x rows x tokens x width x 4 bytes that nothing reads.
        to_fp32 = convert_outputs_to_fp32 if model is wrapper.critic_backbone else _logits_to_fp32
        model.forward = to_fp32(autocast(model.forward))


def _logits_to_fp32(forward):
    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        out = forward(*args, **kwargs)
        if getattr(out, "logits", None) is not None:
            out.logits = out.logits.float()
        return out

    return wrapped


def checkpoint_activations(trainer) -> None:
    """`activation_checkpointing=true` for PPO: TRL 1.12's PPOTrainer defines the switch but runs its own
    loop, which never reads it. Turned on here for both models it trains, policy and value, as the Trainer
    turns it on for every other method (its kwargs, `every_n_layers`, `offload`; transformers makes the
    embeddings' output require grad for an adapter). PPO generates with the policy in train mode, where a
    checkpointed layer drops its KV cache, so checkpointing is off while it generates, as TRL's other
    trainers turn it off for their no-grad forwards."""
    kwargs = dict(trainer.args.activation_checkpointing_kwargs or {})
    every, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
    wrapper = trainer.accelerator.unwrap_model(trainer.model)
    for model in (wrapper.policy, wrapper.value_model):
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=kwargs or None, every_n_layers=every, offload=offload
        )
    policy, generate = wrapper.policy, wrapper.policy.generate
    checkpointed = [m for m in policy.modules() if getattr(m, "gradient_checkpointing", False) is True]

    def generate_without_checkpointing(*args, **kw):
        for module in checkpointed:
            module.gradient_checkpointing = False
        try:
            return generate(*args, **kw)
        finally:
            for module in checkpointed:
                module.gradient_checkpointing = True

    policy.generate = generate_without_checkpointing
