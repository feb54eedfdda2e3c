"""Tables from run folders: `python -m bench.report DIR [DIR ...]`.

Globs every `metrics.json` below the folders (never a shared file that parallel jobs append to),
groups runs by everything but the seed, and prints mean ± std over seeds. Writes report.md and
report.csv into the first folder; `--wandb` also logs the table to W&B (offline unless told).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import bench  # noqa: F401  (offline/telemetry environment defaults)

GROUP = ("method", "model", "task", "quant", "peft/r")
COLUMNS = [  # (metrics.json key, header, formatter)
    ("params/trainable", "trainable", lambda v: f"{v / 1e6:.2f}M"),
    ("params/lora_exact", "LoRA exact", lambda v: f"{v / 1e6:.2f}M"),
    ("params/lora_card_formula", "card 2rdLM", lambda v: f"{v / 1e6:.2f}M"),
    ("sys/peak_mem_bytes", "peak mem", lambda v: f"{v / 2**30:.2f} GiB"),
    ("sys/train_mem_bytes", "train mem", lambda v: f"{v / 2**30:.2f} GiB"),
    ("train/step_time_s", "step s", lambda v: f"{v:.2f}"),
    ("train/tokens_per_s", "tokens/s", lambda v: f"{v:.0f}"),
    ("train/wall_s", "train s", lambda v: f"{v:.0f}"),
    ("eval/accuracy", "accuracy", lambda v: f"{v:.3f}"),
    ("eval/base_accuracy", "base acc", lambda v: f"{v:.3f}"),
    ("eval/delta", "delta", lambda v: f"{v:+.3f}"),
]


def load_runs(folders: list[Path]) -> list[dict]:
    runs = []
    for folder in folders:
        if not folder.exists():
            raise SystemExit(f"bench.report: {folder} does not exist.")
        for path in sorted(folder.rglob("metrics.json")):
            record = json.loads(path.read_text())
            record["_path"] = str(path.parent)
            runs.append(record)
    return runs


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per configuration; numeric columns as (mean, std, n) over its successful seeds."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run.get(k) for k in GROUP), []).append(run)
    rows = []
    for key, members in groups.items():
        ok = [m for m in members if m.get("status") == "success"]
        row = dict(zip(GROUP, key, strict=True))
        row["runs"] = f"{len(ok)}/{len(members)}"
        row["seeds"] = sorted({m.get("seed") for m in ok})
        for column, _, _ in COLUMNS:
            values = [m[column] for m in ok if isinstance(m.get(column), (int, float))]
            if column.startswith("eval/") and any(m.get("weights") == "random" for m in ok):
                values = []  # random weights: memory and speed only, accuracy is meaningless
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                row[column] = (statistics.fmean(values), std, len(values))
        rows.append(row)
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in GROUP))


def markdown(rows: list[dict]) -> str:
    headers = ["method", "model", "task", "quant", "r", "runs"] + [h for _, h, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [
            str(row["method"]),
            str(row["model"]),
            str(row["task"]),
            str(row["quant"]),
            str(row["peft/r"]),
            row["runs"],
        ]
        for column, _, fmt in COLUMNS:
            if column not in row:
                cells.append("–")
                continue
            mean, std, n = row[column]
            cells.append(
                fmt(mean) + (f" ± {fmt(std).lstrip('+')}" if n > 1 and not math.isclose(std, 0) else "")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(runs: list[dict]) -> list[str]:
    return [
        f"- {r.get('method')} seed {r.get('seed')} ({r['_path']}): {r.get('status')}: {r.get('error')}"
        for r in runs
        if r.get("status") != "success"
    ]


def log_wandb(rows: list[dict], name: str) -> None:
    import wandb

    headers = list(GROUP) + ["runs"] + [c for c, _, _ in COLUMNS]
    table = wandb.Table(columns=headers)
    for row in rows:
        table.add_data(*[row.get(h)[0] if isinstance(row.get(h), tuple) else row.get(h) for h in headers])
    with wandb.init(project="rft-bench", name=f"report-{name}", job_type="report") as run:
        run.log({"comparison": table})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders", nargs="+", type=Path, help="sweep or run folders holding metrics.json files"
    )
    parser.add_argument("--wandb", action="store_true", help="also log the table to W&B (WANDB_MODE applies)")
    args = parser.parse_args(argv)
    runs = load_runs(args.folders)
    if not runs:
        print(f"bench.report: no metrics.json below {', '.join(map(str, args.folders))}.", file=sys.stderr)
        return 1
    rows = aggregate(runs)
    text = markdown(rows)
    failed = failures(runs)
    if failed:
        text += "\n\nFailed runs:\n" + "\n".join(failed)
    print(text)
    out = args.folders[0]
    (out / "report.md").write_text(text + "\n")
    import csv

    with (out / "report.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(GROUP) + ["runs"] + [f"{c}{s}" for c, _, _ in COLUMNS for s in ("", "_std")])
        for row in rows:
            cells = [row[k] for k in GROUP] + [row["runs"]]
            for column, _, _ in COLUMNS:
                cells += list(row[column][:2]) if column in row else ["", ""]
            writer.writerow(cells)
    if args.wandb:
        log_wandb(rows, out.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
