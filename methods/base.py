"""What the harness hands an adapter. An adapter maps this onto its TRL trainer and nothing more:
it never loads a base model itself, never reads the LoRA/quantization settings, never measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# prompts:    conversational `prompt` + gold `answer` (online methods call the reward themselves)
# preference: `prompt`, `chosen`, `rejected`, built from base-model samples scored by the reward
# unpaired:   `prompt`, `completion`, `label` (reward above threshold), labels interleaved
# prompt_ids: `input_ids` of the chat-formatted prompt (PPO's format), plus `answer`
DATA_KINDS = ("prompts", "preference", "unpaired", "prompt_ids")


@dataclass
class RunContext:
    model: object  # the base model, loaded with the run's dtype and quantization
    tokenizer: object
    # The shared LoRA config: pass it as the trainer's `peft_config`, so TRL wraps the model its own
    # way (reference = adapter disabled). Never edit it: it is the same for every method.
    peft_config: object
    args: object  # the method's TRL config, built from train.args + method.args + harness flags
    dataset: object  # a datasets.Dataset of the kind the method registered for
    reward_funcs: list[Callable]  # TRL-signature rewards, weighted by `reward_weights`
    reward_weights: list[float]
    score: Callable[[list, list], list[float]]  # (completions, answers) -> the scalar task reward
    callbacks: list  # the harness's measuring callbacks: pass them to the trainer
    method_cfg: dict  # the method's YAML beyond `args` (e.g. PPO's `reward:`)
    # Loads another copy of the base model with the run's dtype/quantization, LoRA-wrapped with the
    # shared settings; head="value" gives a one-output sequence scorer (PPO's value/reward model).
    load_model: Callable[..., object] = None
    # Builds another dataset kind from the same prompts (e.g. PPO's reward model needs preference).
    data: Callable[[str], object] = None
    # Facts the adapter wants on record about what it built (recorded as `method/<key>`).
    extra: dict = field(default_factory=dict)
