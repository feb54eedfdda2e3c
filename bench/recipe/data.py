"""One data pipeline for every method: the same prompts, and offline data built from the base model.

Online methods (GRPO, PPO) get the prompts and call the reward themselves. Offline methods get data
built once per (model, task prompts, seed, sampling settings): the base model samples K completions
per prompt, the task's reward scores them, the best and worst become chosen/rejected (DPO, ORPO, and
PPO's reward model) and each becomes an unpaired KTO example labelled by the reward threshold. A group
whose samples all tie gets the gold answer as `chosen` when it has a wrong sample to reject. The
result is cached as JSON under cache_dir/data and fingerprinted, so every method of a sweep trains on
identical rows and a rerun costs nothing.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.system import cache, files
from bench.tasks import Example, Task
from bench.tasks.base import fingerprint

log = logging.getLogger(__name__)


@dataclass
class BuildStats:
    prompts: int = 0
    samples: int = 0
    pairs: int = 0  # chosen/rejected pairs kept
    ties: int = 0  # groups whose samples all scored the same
    gold_fallbacks: int = 0  # ties resolved with the gold answer as chosen
    dropped: int = 0  # ties with nothing to reject (all samples correct) or no fallback allowed
    mean_sample_reward: float = 0.0  # the base model's reward on training prompts, for reference
    kto_desirable: int = 0
    kto_undesirable: int = 0
    label_noise: float = 0.0  # data.label_noise: the rate at which pairs (and their KTO labels) were flipped
    flipped: int = 0  # pairs flipped at that rate


@dataclass
class OfflineData:
    pairs: list[dict]  # {"prompt", "chosen", "rejected"} in conversational form
    unpaired: list[dict]  # {"prompt", "completion", "label"}
    stats: BuildStats
    fingerprint: str
    build_s: float = 0.0  # what building cost when it was built, also when this run found it cached
    cached: bool = False  # this run loaded it instead of building it
    # The sampling settings the builder's generate() calls actually used (fair/temperature, ...), as
    # recorded when it was built.
    generation: dict | None = None


@dataclass
class PromptFit:
    """What the prompt budget did to a run's prompts (recorded as data/*)."""

    budget: int
    longest: int  # the longest chat-formatted prompt before the budget, in tokens
    truncated: int  # prompts cut to the budget
    tokens_cut: int  # tokens removed from them, in all

    def record(self) -> dict:
        # The budget itself is the record's fair/max_prompt_length (bench.recipe.train.fair_record).
        return {
            "data/max_prompt_tokens": self.longest,
            "data/truncated_prompts": self.truncated,
            "data/truncated_prompt_tokens": self.tokens_cut,
        }


def fit_prompts(task: Task, examples: list[Example], tokenizer, budget: int, overflow: str):
    """The prompts within the shared budget (`train.max_prompt_length`, tokens of the chat-formatted
    prompt), before any method's data is built from them: every method then trains on the same tokens.
    A longer prompt keeps its last tokens (the question, and the answer format the task asks for at its
    end), or the run is refused (`overflow="refuse"`), before any model loads."""
    if overflow not in ("truncate", "refuse"):
        raise BenchError(f"train.prompt_overflow={overflow!r}: truncate (keep each prompt's end) or refuse.")

    def length(example: Example) -> int:
        return len(
            tokenizer.apply_chat_template(
                task.messages(example), add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    lengths = [length(ex) for ex in examples]
    over = [i for i, n in enumerate(lengths) if n > budget]
    fit = PromptFit(budget, max(lengths, default=0), 0, 0)
    if over and overflow == "refuse":
        raise BenchError(
            f"{len(over)} of {len(examples)} training prompts are longer than train.max_prompt_length={budget} "
            f"tokens (the longest: {fit.longest} tokens, training prompt {lengths.index(fit.longest) + 1}). "
            "Raise train.max_prompt_length (every method's max_length follows it), or set "
            "train.prompt_overflow=truncate to keep each prompt's last tokens."
        )
    out = list(examples)
    for i in over:
        ids = tokenizer(examples[i].prompt, add_special_tokens=False)["input_ids"]
        cut = lengths[i] - budget
        while True:  # decoding and re-encoding may merge tokens differently: cut until it fits
            shorter = replace(examples[i], prompt=tokenizer.decode(ids[min(cut, len(ids)) :]))
            n = length(shorter)
            if n <= budget or cut >= len(ids):
                break
            cut += n - budget
        if n > budget:
            raise BenchError(
                f"train.max_prompt_length={budget}: the task's chat template alone takes {n} tokens; raise it."
            )
        out[i] = shorter
        fit.truncated += 1
        fit.tokens_cut += lengths[i] - n
    if over:
        log.warning(
            "prompt budget: %d of %d prompts were longer than train.max_prompt_length=%d tokens (the "
            "longest: %d) and keep their last %d tokens, for every method alike",
            len(over),
            len(examples),
            budget,
            fit.longest,
            budget,
        )
    return out, fit


def prompt_rows(task: Task, examples: list[Example]) -> list[dict]:
    """Conversational prompts with the example's fields as columns (online methods' rewards read them)."""
    return [{"prompt": task.messages(ex), **ex.fields} for ex in examples]


def prompts_fingerprint(task: Task, examples: list[Example]) -> str:
    return fingerprint(prompt_rows(task, examples))


def prompt_ids_dataset(task: Task, examples: list[Example], tokenizer) -> Dataset:
    """PPO's format: the chat-formatted prompt as `input_ids` (no padding; its collator pads)."""
    ids = [
        tokenizer.apply_chat_template(task.messages(ex), add_generation_prompt=True, tokenize=True, return_dict=False)
        for ex in examples
    ]
    return Dataset.from_dict({"input_ids": ids})


def dataset(kind: str, task: Task, examples: list[Example], tokenizer, offline: OfflineData | None) -> Dataset:
    """The dataset of one kind (methods.base.DATA_KINDS) from the shared prompts."""
    if kind == "prompts":
        return Dataset.from_list(prompt_rows(task, examples))
    if kind == "prompt_ids":
        return prompt_ids_dataset(task, examples, tokenizer)
    if kind == "gold":  # supervised baseline: the task's gold completion for each prompt
        return Dataset.from_list(
            [
                {"prompt": task.messages(ex), "completion": [{"role": "assistant", "content": ex.gold}]}
                for ex in examples
            ]
        )
    if offline is None:
        raise TypeError(f"the {kind} data is built from offline samples: none were given")
    rows = offline.pairs if kind == "preference" else offline.unpaired
    if not rows:
        raise BenchError(
            f"The {kind} data is empty: every prompt's samples tied and none could fall back to the "
            "gold answer; raise data.samples_per_prompt or train.num_prompts."
        )
    return Dataset.from_list(rows)


def offline_data(
    model,
    tokenizer,
    task: Task,
    examples: list[Example],
    data_cfg: DictConfig,
    sampling: DictConfig,
    seed: int,
    model_key: str,
    cache_dir: str,
    observe: Callable[[], dict] | None = None,
) -> OfflineData:
    """Build (or load from cache) the preference pairs and KTO examples for these prompts.

    `sampling` is the shared sampling group (temperature, top_p, max_new_tokens), the same that online
    methods' rollouts use. `observe()`, called after sampling, returns what the generate() calls
    actually used; it is stored with the entry, so a run that finds the data cached reports it too.
    """
    # The noise is applied after the cache (flip_labels): noisy and clean runs share one build.
    data_settings = cast("dict[str, Any]", OmegaConf.to_container(data_cfg, resolve=True))
    clean = {k: v for k, v in data_settings.items() if k != "label_noise"}
    settings = {**clean, "sampling": OmegaConf.to_container(sampling, resolve=True)}
    key = fingerprint(
        {
            "model": model_key,
            "prompts": prompts_fingerprint(task, examples),
            "rewards": task.reward_weights,
            "seed": seed,
            "sampling": settings,
        }
    )
    path = Path(cache_dir).expanduser() / "data" / f"{task.name}-{key}.json"
    with cache.build_lock(path):  # parallel jobs: one builds, the others wait and read its file
        if cache.usable(path, "offline data"):
            cached = files.read_json(path)
            data = OfflineData(
                cached["pairs"],
                cached["unpaired"],
                BuildStats(**cached["stats"]),
                cached["fingerprint"],
                build_s=cached.get("build_s", 0.0),
                cached=True,
                generation=cached.get("generation"),
            )
        else:
            started = time.perf_counter()
            samples = sample_completions(model, tokenizer, task, examples, data_cfg, sampling, seed)
            data = assemble(task, examples, samples, data_cfg, seed)
            data.build_s = round(time.perf_counter() - started, 3)
            data.generation = observe() if observe else None
            cache.publish_json(path, {**asdict(data), "settings": settings, "model": model_key})
    return flip_labels(data, float(data_cfg.label_noise), seed)


def flip_labels(data: OfflineData, rate: float, seed: int) -> OfflineData:
    """`data.label_noise`: each pair, with probability `rate`, has its chosen and rejected swapped, and the
    two KTO examples made from it have their labels flipped with it: one corruption, applied identically
    to the pairs (DPO, ORPO, ...) and to the labels (KTO, BCO). Seeded by the run's seed; pure."""
    if not rate:
        return data
    rng = random.Random(f"label_noise:{seed}")
    pairs, flipped_texts, flipped = [], set(), 0
    for pair in data.pairs:
        if rng.random() < rate:
            flipped += 1
            pair = {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}
            key = json.dumps(pair["prompt"], sort_keys=True)
            flipped_texts |= {(key, pair["chosen"][0]["content"]), (key, pair["rejected"][0]["content"])}
        pairs.append(pair)
    unpaired = [
        {**row, "label": not row["label"]}
        if (json.dumps(row["prompt"], sort_keys=True), row["completion"][0]["content"]) in flipped_texts
        else row
        for row in data.unpaired
    ]
    stats = replace(
        data.stats,
        label_noise=rate,
        flipped=flipped,
        kto_desirable=sum(r["label"] for r in unpaired),
        kto_undesirable=sum(not r["label"] for r in unpaired),
    )
    return replace(
        data,
        pairs=pairs,
        unpaired=unpaired,
        stats=stats,
        fingerprint=fingerprint({"pairs": pairs, "unpaired": unpaired}),
    )


@torch.no_grad()
def sample_completions(
    model, tokenizer, task: Task, examples: list[Example], data_cfg: DictConfig, sampling, seed: int
):
    """K sampled completions per prompt from the base model, as text, with the shared sampling settings."""
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    k, out = int(data_cfg.samples_per_prompt), list[list[str]]()
    started = time.perf_counter()
    try:
        for start in range(0, len(examples), int(data_cfg.batch_size)):
            batch = examples[start : start + int(data_cfg.batch_size)]
            texts = [
                tokenizer.apply_chat_template(task.messages(ex), add_generation_prompt=True, tokenize=False)
                for ex in batch
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            gen = model.generate(
                **enc,
                do_sample=True,
                temperature=float(sampling["temperature"]),
                top_p=float(sampling["top_p"]),
                max_new_tokens=int(sampling["max_new_tokens"]),
                num_return_sequences=k,
                pad_token_id=tokenizer.pad_token_id,
            )
            decoded = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(decoded[i * k : (i + 1) * k] for i in range(len(batch)))
            # A build takes minutes on a CPU: say how far it is, as TRL's training loop does.
            elapsed = time.perf_counter() - started
            log.info(
                "offline data: %d/%d prompts sampled (%d completions, %.2f prompts/s)",
                len(out),
                len(examples),
                len(out) * k,
                len(out) / max(elapsed, 1e-9),
            )
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return out


def assemble(task: Task, examples: list[Example], samples: list[list[str]], data_cfg: DictConfig, seed: int):
    """Score the samples and turn each group into a pair and two unpaired examples (pure; tested directly)."""
    stats = BuildStats(prompts=len(examples))
    pairs: list[dict] = []
    desirable: list[dict] = []
    undesirable: list[dict] = []
    all_rewards: list[float] = []
    for ex, group in zip(examples, samples, strict=True):
        rewards = task.score(group, [ex.fields] * len(group))
        all_rewards.extend(rewards)
        stats.samples += len(group)
        best, worst = (
            max(range(len(group)), key=rewards.__getitem__),
            min(range(len(group)), key=rewards.__getitem__),
        )
        chosen, rejected = group[best], group[worst]
        chosen_reward, rejected_reward = rewards[best], rewards[worst]
        if chosen_reward == rejected_reward:
            stats.ties += 1
            gold = ex.gold
            gold_reward = task.score([gold], [ex.fields])[0]
            if not data_cfg.gold_fallback or gold_reward <= rejected_reward:
                stats.dropped += 1
                continue
            chosen, chosen_reward = gold, gold_reward
            stats.gold_fallbacks += 1
        prompt = task.messages(ex)
        pairs.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
        for text, reward in ((chosen, chosen_reward), (rejected, rejected_reward)):
            row = {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": text}],
                "label": reward > float(data_cfg.kto_threshold),
            }
            (desirable if row["label"] else undesirable).append(row)
    stats.pairs = len(pairs)
    stats.kto_desirable, stats.kto_undesirable = len(desirable), len(undesirable)
    stats.mean_sample_reward = round(sum(all_rewards) / max(len(all_rewards), 1), 4)
    unpaired = interleave(desirable, undesirable, seed)
    return OfflineData(pairs, unpaired, stats, fingerprint({"pairs": pairs, "unpaired": unpaired}))


def interleave(desirable: list[dict], undesirable: list[dict], seed: int) -> list[dict]:
    """Shuffle each label, then spread both evenly through the list.

    KTO reads its data in order, so evenly spread labels put both in every batch whenever the
    minority label has at least one example per batch.
    """
    rng = random.Random(seed)
    keyed: list[tuple[float, dict]] = []
    for group in (desirable, undesirable):
        group = group[:]
        rng.shuffle(group)
        keyed.extend(((i + 0.5) / len(group), row) for i, row in enumerate(group))
    return [row for _, row in sorted(keyed, key=lambda item: item[0])]
