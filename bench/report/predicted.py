"""The report's "Predicted against measured" section: each row's first finished run, estimated by
bench.estimate from its own recorded config and prompt length, beside what the run measured, so a drift
between the model and the measurement shows in every report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.config import history
from bench.estimate.model import estimate
from bench.records.schema import GiB
from bench.system import files


def _predict(record: pd.Series):
    config = Path(record["path"]) / "config_resolved.yaml"
    cfg = history.complete(files.read_yaml(config, "It is the run's own config."))
    cfg.device = str(record.get("sys/device") or "cpu")
    cfg.precision = str(record.get("sys/precision") or "fp32")
    prompt = record.get("data/max_prompt_tokens")
    return estimate(cfg, prompt_tokens=int(prompt) if pd.notna(prompt) else None)


def _ratio(predicted: float, measured) -> str:
    return "–" if measured is None or pd.isna(measured) or not measured else f"{predicted / measured:.2f}"


def predicted_markdown(runs: pd.DataFrame) -> list[str]:
    if "mem/max_saved_bytes" not in runs or "status" not in runs:
        return []
    ok = runs[(runs["status"] == "success") & runs["mem/max_saved_bytes"].notna()]
    rows = []
    for label, group in ok.groupby("label", sort=False):
        record = group.iloc[0]
        try:
            e = _predict(record)
        except Exception as err:  # noqa: BLE001  (a run the estimate cannot read: say why, go on)
            rows.append(f"| {label} | not estimated: {str(err).splitlines()[0][:120]} | | | | |")
            continue
        runtime = record.get("mem/runtime_bytes") or 0
        peak, measured = e.peak + runtime, record.get("sys/peak_mem_bytes")
        saved = e.parts["activations"] + e.parts["logits"]
        weights = e.parts["weights"] + e.parts["extra_models"]

        rows.append(
            f"| {label} | {peak / GiB:.2f} | {measured / GiB:.2f} | {_ratio(peak, measured)} | "
            f"{_ratio(weights, record.get('mem/weights_bytes'))} | "
            f"{_ratio(saved, record.get('mem/max_saved_bytes'))} |"
        )
    if not rows:
        return []
    return [
        "",
        "## Predicted against measured",
        "",
        "`python -m bench.estimate` for each row's first run (its recorded config and prompt length) beside what "
        "it measured: predicted peak plus the measured runtime, against the measured peak; then predicted / "
        "measured for the frozen weights (every model's) and for what a step saved for backward.",
        "",
        "| configuration | predicted peak (GiB) | measured peak (GiB) | peak ratio | weights ratio | saved ratio |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
