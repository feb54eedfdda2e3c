"""Metric names in one place: what each `metrics.json` key means, its unit and which way is better.

The report (tables, plots), its W&B table and the docs' records page all read `METRICS`, so a key renamed
here is renamed everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GiB = 2**30

# What identifies a configuration: runs that differ only in their seed are aggregated into one row.
# `overrides` are the sweep's other axes (a learning-rate grid); `eval/split` keeps validation and test
# scores apart.
# versions/trl: a table never mixes TRL 1.12 and 1.16 runs in one row, and says which TRL it ran.
GROUP_KEYS = (
    "method",
    "model",
    "weights",
    "task",
    "quant",
    "peft/mode",
    "peft/r",
    "overrides",
    "eval/split",
    "versions/trl",
)

# The parts of the training peak; they sum to sys/peak_mem_bytes. The first is optional: on CPU, the
# process's own footprint before any model loads (Python, torch, libraries), counted apart from "other".
MEMORY_PARTS = (
    "mem/runtime_bytes",
    "mem/weights_bytes",
    "mem/trainable_bytes",
    "mem/gradients_bytes",
    "mem/optimizer_bytes",
    "mem/activations_bytes",  # saved for backward (a peak inside a training step)
    "mem/logits_bytes",
    # copies of trained weights that autocast cast to the compute dtype and backward holds (bf16/fp16 only)
    "mem/autocast_copies_bytes",
    "mem/kv_cache_bytes",  # the generation cache (a peak inside generate())
    "mem/other_bytes",
)


# The dtypes the harness settled each model's weights to (bench.recipe.dtypes), as text ("bfloat16+uint8"):
# the policy's trained and frozen weights, and a reference model's (DPO, KTO, ...: frozen, the run's dtype).
DTYPE_KEYS = ("train/trainable_dtype", "train/frozen_dtypes", "train/reference_dtypes")

# The sampling settings every run records as seen at generate() (fair/temperature, ...).
SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens")


@dataclass(frozen=True)
class Metric:
    key: str  # the metrics.json key
    label: str  # short column header
    unit: str = ""  # the unit after scaling
    scale: float = 1.0  # value × scale is shown
    spec: str = ".3g"  # format spec of the scaled value
    better: Literal["higher", "lower"] | None = None
    group: str = ""
    show: bool = False  # a column of the summary.md table (every metric goes to csv/json/W&B)

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def format(self, value: float | None, std: float | None = None) -> str:
        """`value` (and ` ± std` when given and non-zero) scaled and formatted; '–' when missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        text = f"{value * self.scale:{self.spec}}"
        if std is not None and not math.isnan(std) and std != 0:
            text += f" ± {std * self.scale:{self.spec.lstrip('+')}}"
        return text


def _bytes(key: str, label: str, show: bool = False) -> Metric:
    return Metric(key, label, "GiB", 1 / GiB, ".2f", "lower", "memory", show)


def _seconds(key: str, label: str, show: bool = False) -> Metric:
    return Metric(key, label, "s", spec=".0f", better="lower", group="time", show=show)


METRICS = (
    Metric("params/trainable", "trainable", "M", 1e-6, ".2f", None, "params", show=True),
    Metric("params/total", "total params", "M", 1e-6, ".1f", None, "params"),
    Metric("params/audit_exact", "audit exact", "M", 1e-6, ".2f", None, "params"),
    Metric("params/lora_card_formula", "card 2rdLM", "M", 1e-6, ".2f", None, "params"),
    _bytes("sys/peak_mem_bytes", "peak mem", show=True),
    _bytes("sys/train_mem_bytes", "train mem", show=True),
    _bytes("sys/peak_mem_setup_bytes", "setup peak"),
    _bytes("sys/peak_mem_train_bytes", "train peak"),
    _bytes("sys/peak_mem_eval_bytes", "eval peak"),
    _bytes("mem/runtime_bytes", "runtime"),
    _bytes("mem/weights_bytes", "frozen weights"),
    _bytes("mem/trainable_bytes", "trainable"),
    _bytes("mem/gradients_bytes", "gradients"),
    _bytes("mem/optimizer_bytes", "optimizer state"),
    _bytes("mem/activations_bytes", "saved activations"),
    _bytes("mem/logits_bytes", "saved logits"),
    _bytes("mem/autocast_copies_bytes", "autocast weight copies"),
    _bytes("mem/kv_cache_bytes", "KV cache"),
    _bytes("mem/max_kv_cache_bytes", "largest KV cache"),  # wherever the peak fell (not a part of it)
    _bytes("mem/max_saved_bytes", "largest saved for backward"),
    _bytes("mem/other_bytes", "other"),
    _bytes("mem/unaccounted_bytes", "unaccounted"),  # negative: RSS below the tensors counted (mmap)
    Metric("train/step_time_s", "step", "s", spec=".2f", better="lower", group="throughput", show=True),
    Metric("train/tokens_per_s", "tokens/s", spec=".0f", better="higher", group="throughput", show=True),
    Metric("train/samples_per_s", "samples/s", spec=".2f", better="higher", group="throughput"),
    Metric("train/steps", "steps", spec=".0f", group="throughput"),
    Metric("train/final_loss", "final loss", spec=".3f", group="train"),
    Metric("perf/mfu", "MFU", "%", 100, ".2f", "higher", "throughput", show=True),
    Metric("perf/flops_per_s", "FLOP/s", "GFLOP/s", 1e-9, ".1f", "higher", "throughput"),
    # Generating methods: the steady decode rate, and its share of the memory-bandwidth bound.
    Metric("perf/decode_tokens_per_s", "decode tokens/s", spec=".1f", better="higher", group="throughput"),
    Metric("perf/decode_efficiency", "decode/bound", "%", 100, ".1f", "higher", "throughput"),
    Metric("dist/world_size", "processes", spec=".0f", group="params"),
    _seconds("time/setup_s", "setup"),
    _seconds("time/train_s", "train", show=True),
    _seconds("time/save_s", "save"),
    _seconds("time/eval_s", "eval"),
    _seconds("time/total_s", "run total"),
    _seconds("time/full_s", "full total", show=True),
    # A second stage (init_from): every stage's full time, and the largest stage's peak (bench.recipe.pipeline).
    _seconds("pipeline/full_s", "pipeline total", show=True),
    _bytes("pipeline/peak_mem_bytes", "pipeline peak", show=True),
    _seconds("data/build_s", "data build"),
    _seconds("eval/base_s", "base eval"),
    _seconds("eval/score_s", "lm-eval scoring"),
    Metric("eval/accuracy", "accuracy", spec=".3f", better="higher", group="eval", show=True),
    Metric("eval/base_accuracy", "base acc", spec=".3f", group="eval", show=True),
    Metric("eval/delta", "delta", spec="+.3f", better="higher", group="eval", show=True),
    Metric("eval/stderr", "stderr", spec=".3f", group="eval"),
    Metric("eval/n", "eval items", spec=".0f", group="eval"),
    Metric("eval/game_win_rate", "win rate", spec=".3f", better="higher", group="eval", show=True),
    Metric("eval/base_game_win_rate", "base win rate", spec=".3f", group="eval", show=True),
    Metric("eval/game_mean_guesses", "guesses", spec=".2f", better="lower", group="eval", show=True),
)
BY_KEY = {m.key: m for m in METRICS}


def metric(key: str) -> Metric:
    """The schema entry for `key`; keys outside the schema (a task's extra `eval/*` scores) get a plain one."""
    return BY_KEY.get(key) or Metric(key, key.removeprefix("eval/"), spec=".3f", group=key.split("/")[0])


def markdown() -> str:
    """docs/reference/records.md: every key of the schema, as the report shows it (scripts/records-doc.py
    writes it and a test keeps it current, so the page cannot drift from the schema)."""
    lines = [
        "# Records",
        "",
        "Each run writes one flat `metrics.json` (atomically) in its folder. These are the keys the report "
        "reads, from `bench/records/schema.py`; the page is generated from it (`python scripts/records-doc.py`). "
        "Memory is in GiB (2^30 bytes) in every table; the record holds bytes.",
        "",
        "A run's identity is its **config hash**: a hash of every setting that changes what it computes "
        "(where it writes, how it is logged and whether it is isolated are left out), which resume and "
        "`reuse` compare.",
        "",
        "Rows aggregate the seeds of one configuration, grouped by: " + ", ".join(f"`{k}`" for k in GROUP_KEYS) + ".",
        "",
        "The memory parts, which sum to the peak: " + ", ".join(f"`{k}`" for k in MEMORY_PARTS) + ".",
        "",
        "The weights' dtypes, as text: " + ", ".join(f"`{k}`" for k in DTYPE_KEYS) + ".",
        "",
        "| key | column | unit shown | better | group | in summary.md |",
        "|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        lines.append(
            f"| `{m.key}` | {m.label} | {m.unit or '–'} | {m.better or '–'} | {m.group} | {'yes' if m.show else ''} |"
        )
    lines += [
        "",
        "Keys outside this table (a task's extra `eval/*` scores, `fair/*`, `data/*`, `gen/*`, `train/*` "
        "details, `versions/*`, `git/*`, `sys/*`) are kept in the record and in `summary.csv`/`summary.json`.",
        "",
    ]
    return "\n".join(lines)
