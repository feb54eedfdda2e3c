"""What the harness hands an adapter. An adapter maps this onto its TRL trainer and nothing more:
it never loads a base model itself, never reads the LoRA/quantization settings, never measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types only: importing transformers is seconds, and an adapter imports what it uses
    from datasets import Dataset
    from peft import PeftConfig
    from transformers import (
        PreTrainedModel,
        PreTrainedTokenizerBase,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

# prompts:    conversational `prompt` + the task's per-example fields (online methods' rewards read them)
# preference: `prompt`, `chosen`, `rejected`, built from base-model samples scored by the reward
# unpaired:   `prompt`, `completion`, `label` (reward above threshold), labels interleaved
# prompt_ids: `input_ids` of the chat-formatted prompt (PPO's format); the fields are in ctx.fields
# gold:       `prompt`, `completion` = the task's gold completion (the supervised baseline)
DATA_KINDS = ("prompts", "preference", "unpaired", "prompt_ids", "gold")


@dataclass(frozen=True)
class RunContext:
    model: PreTrainedModel  # the base model, loaded with the run's dtype and quantization
    tokenizer: PreTrainedTokenizerBase
    # The shared peft config: pass it as the trainer's `peft_config`, so TRL wraps the model its own
    # way (reference = adapter disabled). Never edit it: it is the same for every method. None means
    # full fine-tuning (peft=none): TRL then keeps its own reference copy where a method needs one.
    peft_config: PeftConfig | None
    args: TrainingArguments  # the method's TRL config, built from train.args + method.args + harness flags
    dataset: Dataset  # of the kind the method registered for
    reward_funcs: list[Callable]  # TRL-signature rewards, weighted by `reward_weights`
    reward_weights: list[float]
    score: Callable[[list, list], list[float]]  # (completions, per-example fields) -> the scalar reward
    callbacks: list[TrainerCallback]  # the harness's measuring callbacks: pass them to the trainer
    method_cfg: dict[str, Any]  # the method's YAML beyond `args` (e.g. PPO's `reward:`)
    # Loads another copy of the base model with the run's dtype/quantization, wrapped in the shared
    # fine-tuning mode; head="value" gives a one-output sequence scorer (PPO's value/reward model).
    load_model: Callable[..., PreTrainedModel]
    # Builds another dataset kind from the same prompts (e.g. PPO's reward model needs preference).
    data: Callable[[str], Dataset]
    # check_rows(handed, trainer): for a trainer the adapter trains itself (PPO's reward model), what the
    # harness checks of every method's trainer: rows its preprocessing dropped are said, none left stops.
    check_rows: Callable[[int, Trainer], None]
    # The task's per-example fields, aligned with the prompts (for adapters whose dataset drops them).
    fields: list[dict] = field(default_factory=list)
    # The validated configs of the trainers it runs before its own (Method.side_configs), by name.
    configs: dict = field(default_factory=dict)
    # Facts the adapter wants on record about what it built (recorded as `method/<key>`).
    extra: dict = field(default_factory=dict)

    def trainer_kwargs(self) -> dict:
        """What every TRL trainer takes from the harness alike: the policy, its config, the dataset, the
        tokenizer, the shared peft config and the measuring callbacks. An adapter adds its own (rewards)."""
        return {
            "model": self.model,
            "args": self.args,
            "train_dataset": self.dataset,
            "processing_class": self.tokenizer,
            "peft_config": self.peft_config,
            "callbacks": self.callbacks,
        }


@dataclass(frozen=True)
class MemoryFacts:
    """What a method's trainer holds in memory that neither its data kind nor its TRL config says, declared
    on its adapter (`register(..., memory=MemoryFacts(...))`) for the estimate (bench.estimate). An
    adapter that declares none gets an estimate that says it assumed none of these."""

    # A reference model: True always; a TRL config field's name where the reference exists only while that
    # field is above 0 (GRPO's and RLOO's `beta`). With an adapter the reference is the base with the adapter
    # disabled (no copy); under full fine-tuning TRL holds a frozen fp32 copy.
    reference: bool | str = False
    # The loss adds a supervised (NLL) term on the chosen half: its log-softmax is saved a second time.
    nll_on_chosen: bool = False
    # Extra copies of every row's logits the trainer saves for backward (TRL 1.12's BCO sums them for its
    # metrics with autograd on: one).
    logits_copies: int = 0
    # A value model: a second base with its own adapter (or, under full fine-tuning, trained whole) and a
    # one-output score head, run on the same rows as the policy (PPO).
    value_model: bool = False
    # Completions sampled per prompt and trained on in one step (online DPO ranks two), for the online kinds.
    completions_per_prompt: int = 1
