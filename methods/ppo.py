"""PPO (trl.experimental.ppo.PPOTrainer): online RL with a value model and a reward model.

The reward is the task's own rule by default (wrapped as a reward model). `method.reward=model`
runs the classic RLHF pipeline instead: first a reward model trained with trl.RewardTrainer on the
same preference pairs DPO uses, then PPO against it. The value model is a LoRA-adapted copy of the
base (plus its score head) in the shared fine-tuning mode: with peft=none a full trainable copy.
"""

from __future__ import annotations

from bench.tasks.reward_model import RuleRewardModel
from methods import MemoryFacts, RunContext, register

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
    from trl import RewardTrainer

    tokenizer, pairs = ctx.tokenizer, ctx.data("preference")
    # Plain text with the chat-formatted prompt: the trainer appends EOS, so the reward is read at the
    # same end-of-turn token where PPO reads it.
    rows = pairs.map(
        lambda row: {
            "prompt": tokenizer.apply_chat_template(
                row["prompt"], add_generation_prompt=True, tokenize=False
            ),
            "chosen": row["chosen"][-1]["content"],
            "rejected": row["rejected"][-1]["content"],
        }
    )
    trainer = RewardTrainer(
        model=ctx.load_model(head="value"), args=ctx.configs["reward_model"], train_dataset=rows, processing_class=tokenizer
    )
    ctx.check_rows(len(rows), trainer)  # RewardTrainer filters pairs over its max_length: never silently
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    ctx.extra.update(
        reward_model_steps=trainer.state.global_step, reward_model_final_loss=losses[-1] if losses else None
    )
    model = trainer.model.merge_and_unload().eval()
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


# PPOConfig has no top_p (its trainer samples with top_p=1.0): the recorded fair/top_p shows it.
SAMPLING = {"temperature": "temperature", "max_new_tokens": "response_length"}


@register(
    "ppo", config="trl.experimental.ppo:PPOConfig", data="prompt_ids", policy=lambda trainer: trainer.model.policy,
    sampling=SAMPLING, needs="TRL 1.12 (1.13 removed PPO, trl#7020)", side_configs=side_configs,
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
        raise ValueError(
            f"method.reward={reward!r}: use 'rule' (the task's reward) or 'model' (RewardTrainer first)"
        )
    return PPOTrainer(
        args=ctx.args,
        processing_class=ctx.tokenizer,
        model=ctx.model,
        # With a peft_config the reference is the policy with its adapter disabled; without one
        # (peft=none) TRL makes a frozen copy.
        ref_model=None,
        reward_model=reward_model,
        train_dataset=ctx.dataset,  # input_ids only: PPO's collator pads nothing else
        value_model=ctx.load_model(head="value"),
        peft_config=ctx.peft_config,
        callbacks=ctx.callbacks,
    )
