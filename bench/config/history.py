"""Keys added after runs were recorded, and the value every run had before each key existed.

One table, two uses:
- a recorded config (a run's config_resolved.yaml read back by `python -m bench.recipe.evaluate`, a
  pipeline's first stage, a tuning study's runs) is completed with these values, so that code reads
  every key the way it reads a fresh config: without a fallback, the default living in YAML alone;
- where a key is hash-neutral, the config hash leaves it out at its earlier value, so that every run
  recorded before the key existed still resumes and is still found by `reuse` (bench.config.hashing).
  The others changed every hash when they came (eval.split came with the validation split).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

# dotted key: (its value before it existed, left out of the hash at that value)
EARLIER: dict[str, tuple[object, bool]] = {
    "init_from": (None, True),
    "data.label_noise": (0.0, True),
    "train.rollout": ("trl", True),
    "eval.path": ("adapter", True),  # new runs score merged (conf/eval/default.yaml); these scored unmerged
    # The prompt budget at its default (432 + 64 + 16 = the 512 every max_length had before it).
    "train.max_prompt_length": (432, True),
    "train.prompt_overflow": ("truncate", True),
    "train.max_length": (512, True),
    "eval.split": ("test", False),
    "eval.games": (None, False),
    "task.num_validation": (0, False),  # no validation split: the test split as it was drawn then
    "train.disable_dropout": (True, False),
    "reuse": ([], False),
}

HASH_NEUTRAL = {key: value for key, (value, neutral) in EARLIER.items() if neutral}


def complete(cfg: DictConfig | dict) -> DictConfig:
    """A recorded config with every key it predates set to the value its run had."""
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    for key, (value, _) in EARLIER.items():
        parent = key.rpartition(".")[0]
        if OmegaConf.select(cfg, key, default="<absent>") == "<absent>" and (
            not parent or OmegaConf.select(cfg, parent) is not None
        ):
            OmegaConf.update(cfg, key, value, force_add=True)
    return cfg
