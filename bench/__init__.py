"""rft-bench: compare reinforcement fine-tuning methods with LoRA on one model, one task, one reward."""

from __future__ import annotations

import os

# Runs open no network connection unless the user asks for one: no Hub telemetry, ever, and offline
# Hub/W&B modes unless the caller set them (users with network export HF_HUB_OFFLINE=0).
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class BenchError(Exception):
    """A user-facing error: bad config, missing file, broken data. Its message is the whole story."""
