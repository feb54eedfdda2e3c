"""The task's rule-based reward in the shape of a reward model, for TRL's PPO.

TRL's `get_reward` runs `getattr(model, model.base_model_prefix)(input_ids, attention_mask, ...)`,
takes `.hidden_states[-1]`, applies `model.score` and reads the value at the last response token.
Here the "backbone" decodes each sequence, finds its prompt by exact token prefix (so any chat
template works), scores the completion with the task's reward and broadcasts that scalar to every
position: wherever PPO reads, it gets the task reward. Nothing in it is trainable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers.utils import ModelOutput


class _RuleBackbone(nn.Module):
    def __init__(self, tokenizer, prompts: list[list[int]], fields: list[dict], score: Callable):
        super().__init__()
        self.tokenizer, self.score_fn = tokenizer, score
        self.fields = {tuple(ids): row for ids, row in zip(prompts, fields, strict=True)}
        self.lengths = sorted({len(ids) for ids in prompts}, reverse=True)

    def _split(self, ids: list[int]) -> tuple[dict | None, list[int]]:
        for length in self.lengths:  # prompts are unique token sequences: the longest match wins
            row = self.fields.get(tuple(ids[:length]))
            if row is not None:
                return row, ids[length:]
        return None, ids

    def forward(self, input_ids, attention_mask=None, **kwargs):
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        completions, rows = [], []
        for ids, keep in zip(input_ids, mask, strict=True):
            row, completion = self._split(ids[keep].tolist())
            if row is None:
                raise ValueError("PPO scored a sequence whose prompt is not in the training prompts")
            completions.append(self.tokenizer.decode(completion, skip_special_tokens=True))
            rows.append(row)
        rewards = torch.tensor(self.score_fn(completions, rows), dtype=torch.float32, device=input_ids.device)
        hidden = rewards.view(-1, 1, 1).expand(-1, input_ids.shape[1], 1).contiguous()
        return ModelOutput(hidden_states=(hidden,), last_hidden_state=hidden)


class RuleRewardModel(nn.Module):
    """A reward "model" whose score is the task's rule-based reward of the decoded completion."""

    base_model_prefix = "backbone"

    def __init__(self, tokenizer, prompts: list[list[int]], fields: list[dict], score: Callable):
        super().__init__()
        self.backbone = _RuleBackbone(tokenizer, prompts, fields, score)

    def score(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states
