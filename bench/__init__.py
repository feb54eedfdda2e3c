"""rft-bench: compare reinforcement fine-tuning methods with LoRA on one model, one task, one reward."""

from __future__ import annotations

import os

from bench.system import console

# Runs open no network connection unless the user asks for one: no Hub telemetry, ever, and the Hub
# offline unless the caller set it (users with network export HF_HUB_OFFLINE=0). W&B is offline through
# its config (conf/logger/wandb.yaml: mode, from WANDB_MODE when set), passed to every wandb.init: not
# through WANDB_MODE here, which makes transformers print a line at import in every process.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
console.hold_import_noise()  # bitsandbytes' import-time "kernels" warning: into run.log, never bare on the terminal


class BenchError(Exception):
    """A user-facing error: bad config, missing file, broken data. Its message is the whole story."""
