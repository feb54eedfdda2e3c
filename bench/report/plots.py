"""The report's PNG plots: memory breakdown, accuracy against memory and time, throughput, reward curves.

Drawn on bare matplotlib Figures rendered by the Agg canvas: no pyplot state and no display needed, so
it works on a headless node and inside a Hydra callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bench.records.schema import MEMORY_PARTS, GiB, metric

log = logging.getLogger(__name__)


def memory_breakdown(ax: Axes, runs: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    # Runs recorded before a part existed (saved activations, logits, KV cache) plot without it.
    optional = (
        "mem/runtime_bytes",
        "mem/activations_bytes",
        "mem/logits_bytes",
        "mem/autocast_copies_bytes",
        "mem/kv_cache_bytes",
    )
    required = tuple(k for k in MEMORY_PARTS if k not in optional)
    if missing := [k for k in required if k not in summary]:
        return f"no run recorded {', '.join(missing)}"
    parts = [k for k in MEMORY_PARTS if k in summary]
    data = summary.set_index("label")[parts].dropna(subset=list(required)).fillna({k: 0 for k in optional})
    if data.empty:
        return "no configuration has every part of the memory breakdown"
    # Horizontal bars: configuration labels ("grpo quant=nf4 r=8") stay readable however long they get.
    data = (data / GiB).rename(columns=lambda k: metric(k).label)
    data.iloc[::-1].plot.barh(stacked=True, ax=ax, width=0.7)  # reversed: first configuration on top
    ax.set(title="Peak training memory by part (mean over seeds)", xlabel="memory (GiB)", ylabel="")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return None


def accuracy_vs_memory(ax: Axes, runs: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    if "sys/peak_mem_bytes" not in summary:
        return "no run recorded sys/peak_mem_bytes"
    return _accuracy_against(ax, summary, summary["sys/peak_mem_bytes"] / GiB, "peak memory (GiB)", "peak memory")


def accuracy_vs_time(ax: Axes, runs: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    time = pd.Series(float("nan"), index=summary.index)
    for key in ("time/full_s", "time/total_s"):  # full_s when the harness computed it, else the run's own
        if key in summary:
            time = time.fillna(summary[key])
    label = "full time per run (s): own wall time + reused cached work"
    return _accuracy_against(ax, summary, time, label, "total time")


def throughput(ax: Axes, runs: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    if "train/tokens_per_s" not in summary or summary["train/tokens_per_s"].isna().all():
        return "no run recorded train/tokens_per_s"
    data = summary.dropna(subset=["train/tokens_per_s"]).iloc[::-1]
    ax.barh(data["label"], data["train/tokens_per_s"], xerr=data["train/tokens_per_s_std"].fillna(0), capsize=4)
    ax.set(title="Training throughput (mean ± std over seeds)", xlabel="tokens/s")
    return None


def reward_curves(ax: Axes, runs: pd.DataFrame, summary: pd.DataFrame) -> str | None:
    if "train/reward_curve" not in runs:
        return "no online run logged train/reward_curve"
    drawn, colours = 0, dict[str, str]()
    columns = ["train/reward_curve", "label", "seed", "status"]
    for curve, label, seed, status in runs[columns].itertuples(index=False):
        if isinstance(curve, list) and curve:
            note = "" if status == "success" else f" ({status})"
            colour = colours.setdefault(label, f"C{len(colours) % 10}")  # one colour per configuration
            ax.plot(range(1, len(curve) + 1), curve, color=colour, label=f"{label} seed {seed}{note}")
            drawn += 1
    if not drawn:
        return "no online run logged train/reward_curve"
    ax.set(title="Mean reward during training (online methods)", xlabel="logging step", ylabel="mean reward")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    return None


PLOTS: dict[str, Callable[[Axes, pd.DataFrame, pd.DataFrame], str | None]] = {
    "memory_breakdown": memory_breakdown,
    "accuracy_vs_memory": accuracy_vs_memory,
    "accuracy_vs_time": accuracy_vs_time,
    "throughput": throughput,
    "reward_curves": reward_curves,
}


def make_plots(runs: pd.DataFrame, summary: pd.DataFrame, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Write `<name>.png` for each plot in PLOTS into `out`; returns the paths and {name: why not} for the rest.

    Each plot function draws on the axes it is given and returns None, or the reason it had nothing
    to draw. A plot that fails is logged and skipped: the tables matter more than any one figure.
    """
    written, skipped = [], {}
    for name, draw in PLOTS.items():
        fig = Figure(figsize=(8, 5), layout="constrained")
        FigureCanvasAgg(fig)
        try:
            why = draw(fig.add_subplot(), runs, summary)
        except Exception as e:  # noqa: BLE001
            log.warning("bench.report: plot %s failed", name, exc_info=True)
            why = f"failed: {type(e).__name__}: {e}"
        if why:
            skipped[name] = why
            continue
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written, skipped


def _accuracy_against(ax: Axes, summary: pd.DataFrame, x: pd.Series, xlabel: str, what: str) -> str | None:
    """Accuracy (with its 95% interval as error bars) against a cost, one labelled point per configuration."""
    if "eval/accuracy" not in summary:
        return "no run reported eval/accuracy"
    data = summary.assign(x=x).dropna(subset=["x", "eval/accuracy"])
    if data.empty:
        return f"no configuration has both eval/accuracy and {what}"
    acc = data["eval/accuracy"]
    # Clipped: lm-eval's accuracy and the per-item interval come from different code and may disagree.
    low = (acc - data["eval/accuracy_ci_low"]).clip(lower=0).fillna(0)
    high = (data["eval/accuracy_ci_high"] - acc).clip(lower=0).fillna(0)
    ax.errorbar(data["x"], acc, yerr=[low, high], fmt="o", capsize=4)
    for label, xv, yv in zip(data["label"], data["x"], acc, strict=True):
        ax.annotate(label, (xv, yv), textcoords="offset points", xytext=(6, 4), fontsize="small")
    if "eval/base_accuracy" in data and data["eval/base_accuracy"].nunique() == 1:
        ax.axhline(data["eval/base_accuracy"].iloc[0], color="grey", linestyle="--", label="base model")
        ax.legend(fontsize="small")
    ax.set(title=f"Accuracy against {what} (95% CI)", xlabel=xlabel, ylabel="accuracy")
    return None
