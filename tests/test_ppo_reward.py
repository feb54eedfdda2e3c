"""PPO's rule-based reward, through TRL's own get_reward: 1 for a correct completion, 0 otherwise."""

from __future__ import annotations

import torch
from trl.experimental.utils import get_reward

from bench.recipe.data import prompt_ids_dataset
from bench.recipe.models import load_tokenizer, resolve_model_path
from bench.tasks import load_task
from bench.tasks.reward_model import RuleRewardModel


def test_rule_reward_model_scores_like_the_task(compose):
    cfg = compose("model=tiny")  # SmolLM2's own tokenizer (the subject here), without converting its weights
    tokenizer = load_tokenizer(resolve_model_path(cfg.model.name_or_path, cfg.cache_dir))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id  # PPO finds the response end by the first pad
    task = load_task(cfg.task)
    examples = task.train[:2]
    data = prompt_ids_dataset(task, examples, tokenizer)
    model = RuleRewardModel(tokenizer, list(data["input_ids"]), [ex.fields for ex in examples], task.score)

    a, b = examples
    prompts = [data["input_ids"][0], data["input_ids"][1], data["input_ids"][0], data["input_ids"][1]]
    a, b = a.fields["answer"], b.fields["answer"]
    responses = [f"So the sum is {a}.", f"{int(b) + 1}", f"{a} or maybe 3", f"It is {b}"]
    # Left-pad the prompts to one context length, right-pad responses with pad, as PPO does.
    context = max(map(len, prompts))
    resp_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    width = max(map(len, resp_ids)) + 2
    rows = [
        [tokenizer.pad_token_id] * (context - len(p)) + list(p) + r + [tokenizer.pad_token_id] * (width - len(r))
        for p, r in zip(prompts, resp_ids, strict=True)
    ]
    _, scores, _ = get_reward(model, torch.tensor(rows), tokenizer.pad_token_id, context)
    assert scores.tolist() == [1.0, 0.0, 0.0, 1.0]
