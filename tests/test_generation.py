"""Merged rollouts (train.rollout=merged) generate what TRL's own unmerged path does: greedy tokens at fp32
on a fixed prompt set of the embedded model, with a LoRA that changes the model, match token for token
on at least 99% of the prompts, and every difference starts at a near-tie (top-2 logit gap < 1e-3)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow
NEW_TOKENS = 24
PROMPTS = 32  # fewer than 100: the 1% allowance admits no difference at all


@pytest.fixture(scope="module")
def policy_and_prompts(compose_module):
    from peft import get_peft_model

    from bench.config import finetuning
    from bench.measure import probes
    from bench.recipe.models import load_base, load_tokenizer, resolve_model_path
    from bench.studies.decode import _lora_b_nonzero
    from bench.system.runtime import resolve_runtime
    from bench.tasks import load_task

    cfg = compose_module("method=grpo")
    runtime = resolve_runtime("cpu", "fp32")
    path = resolve_model_path(str(cfg.model.name_or_path), cfg.cache_dir)
    tokenizer = load_tokenizer(path)
    torch.manual_seed(0)
    model = get_peft_model(load_base(cfg, path, runtime), finetuning.peft_config(cfg.peft))
    _lora_b_nonzero(model, 0)
    with torch.no_grad():  # a trained adapter's size: it changes which answer the model gives
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(20)
    probes.disable_dropout(model)
    model.train()  # TRL's rollout runs the training model in train mode (dropout off)
    task = load_task(cfg.task)
    chats = [task.messages(ex) for ex in task.prompts(PROMPTS)]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    return model, tokenizer, texts


@pytest.fixture(scope="module")
def compose_module():
    from bench.config.compose import compose

    return lambda *o: compose(list(o))


def _greedy(model, tokenizer, texts, batch=16):
    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i : i + batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        for row in ids[:, enc["input_ids"].shape[1] :].tolist():  # a finished row is padded: cut there
            out.append(row[: row.index(tokenizer.pad_token_id)] if tokenizer.pad_token_id in row else row)
    return out


@pytest.fixture(scope="module")
def unmerged_tokens(policy_and_prompts):
    """TRL's path: the unmerged adapter, 16 rows a batch (both tests compare against it)."""
    model, tokenizer, texts = policy_and_prompts
    return _greedy(model, tokenizer, texts)


def test_merged_rollouts_generate_the_unmerged_adapters_tokens(policy_and_prompts, unmerged_tokens):
    from bench.measure.metrics import weight_checksums
    from bench.recipe.train import merged_rollouts

    model, tokenizer, texts = policy_and_prompts
    before = weight_checksums(model)
    plain = unmerged_tokens
    base_tokens = None
    with model.disable_adapter():
        base_tokens = _greedy(model, tokenizer, texts[:16])
    assert base_tokens != plain[:16]  # the adapter changes what the model says
    original = model.generate
    merged_rollouts(model)
    try:
        merged = _greedy(model, tokenizer, texts)
    finally:
        model.generate = original
    differ = [i for i, (a, b) in enumerate(zip(plain, merged, strict=True)) if a != b]
    assert len(differ) <= 0.01 * len(texts), f"{len(differ)} of {len(texts)} differ"
    for i in differ:  # each difference begins where the unmerged path's top two logits nearly tie
        # (where one stops and the other goes on, the first difference is the end-of-turn token itself)
        first = next(
            (k for k, (a, b) in enumerate(zip(plain[i], merged[i], strict=False)) if a != b),
            min(len(plain[i]), len(merged[i])),
        )
        enc = tokenizer(texts[i], return_tensors="pt")
        ids = torch.cat([enc["input_ids"], torch.tensor([plain[i][:first]])], dim=1)
        with torch.no_grad():
            top = model(input_ids=ids).logits[0, -1].topk(2).values
        assert float(top[0] - top[1]) < 1e-3
    # Unmerging restores the frozen weights up to float rounding, and the adapter is untouched.
    after = weight_checksums(model)
    for name, (trainable, sums) in before.items():
        rel = float((after[name][1] - sums).abs().max() / sums.abs().max().clamp_min(1e-30))
        assert rel <= (0 if trainable else 1e-6), name


def test_eval_scoring_path_generates_the_unmerged_adapters_tokens(
    policy_and_prompts, unmerged_tokens, compose_module, tmp_path
):
    """Scoring's default (eval.path=merged, eval.batch_size=64) against the unmerged adapter at the old 16 rows
    a batch: the same greedy tokens on >= 99% of the prompts (a wider batch pads shorter prompts further)."""
    import copy

    from bench.recipe.evaluate import scoring_path

    model, tokenizer, texts = policy_and_prompts
    cfg = compose_module()
    (tmp_path / "adapter_config.json").write_text("{}")
    assert scoring_path(cfg, tmp_path) == "merged" and int(cfg.eval.batch_size) == 64
    merged = copy.deepcopy(model).eval().merge_and_unload()  # as evaluate_run scores it
    merged = _greedy(merged, tokenizer, texts, batch=int(cfg.eval.batch_size))
    differ = sum(a != b for a, b in zip(unmerged_tokens, merged, strict=True))
    assert differ <= 0.01 * len(texts), f"{differ} of {len(texts)} differ"
