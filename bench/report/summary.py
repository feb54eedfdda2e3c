"""Tables and plots from run folders: `python -m bench.report DIR [DIR ...] [--out OUT] [--wandb]`.

Globs every `metrics.json` below the folders (one file per run, never a shared file that parallel jobs
append to), aggregates the runs of each configuration (`schema.GROUP_KEYS`: everything but the seed)
and writes summary.md, summary.csv, summary.json and PNG plots into the first folder (or --out).
Every multirun ends with it (`bench.run.callbacks.ReportCallback`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# importing bench also sets the offline/telemetry environment defaults
from bench import BenchError
from bench.config import history
from bench.records.schema import GROUP_KEYS, MEMORY_PARTS, METRICS, GiB
from bench.report import audit
from bench.report.plots import make_plots
from bench.report.predicted import predicted_markdown
from bench.report.sections import sections
from bench.report.stats import accuracy_interval, combine_seeds, holm, paired_test
from bench.system import cache, files

log = logging.getLogger(__name__)

ALPHA = 0.05  # significance level of the Holm-adjusted paired test
ITEM_KEYS = ("eval/items", "eval/base_items")  # per-item lists: used for the tests, kept out of the files
TEST_COLUMNS = (
    "eval/accuracy_ci_low",
    "eval/accuracy_ci_high",
    "eval/delta_ci_low",
    "eval/delta_ci_high",
    "eval/test",
    "eval/p",
    "eval/p_holm",
    "eval/significant",
)
SHORT = {"peft/mode": "peft", "peft/r": "r", "eval/split": "split"}  # how a varying key appears in a label


@dataclass
class Report:
    runs: pd.DataFrame  # one row per run folder, failed runs included
    summary: pd.DataFrame  # one row per configuration
    markdown: str
    files: list[Path]
    skipped_plots: dict[str, str] = field(default_factory=dict)  # plot name -> why it was not drawn
    wandb_dir: str | None = None


# Record keys a record made before their setting existed lacks, and the setting's value then (its one
# home: bench.config.history).
ADDED_LATER = {
    "data/label_noise": history.EARLIER["data.label_noise"][0],
    "fair/max_prompt_length": history.EARLIER["train.max_prompt_length"][0],
}


def load_runs(folders: Sequence[Path | str]) -> pd.DataFrame:
    """One row per metrics.json below the folders; an unreadable file becomes a row with its error."""
    records, seen = [], set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise BenchError(
                f"bench.report: {folder} is not a folder. Pass one or more sweep or run folders (for "
                "example results/sweeps/<date>); the report reads every metrics.json below them."
            )
        for path in sorted(folder.rglob("metrics.json"), key=lambda p: _natural(str(p))):
            if path.resolve() in seen:  # a sweep folder passed together with one of its runs
                continue
            seen.add(path.resolve())
            try:
                record = files.read_json(path)
            except (OSError, BenchError) as e:
                record = {"status": "unreadable", "error": str(e)}
            records.append({**record, "path": str(path.parent)})
    runs = pd.DataFrame.from_records(records)
    if runs.empty:
        return runs
    # Group keys as text, read from the records: pandas would turn an int column with a None into floats.
    for key in GROUP_KEYS:
        runs[key] = [_text(r.get(key)) for r in records]
    # Keys recorded since a later change: a record without one was made before it, at its off value (as
    # bench.config.history.HASH_NEUTRAL leaves them out of the config hash), e.g. a clean run reused from
    # before label noise existed.
    for key, off in ADDED_LATER.items():
        runs[key] = runs[key].fillna(off) if key in runs else off
    runs["seed"] = pd.Series([r.get("seed") for r in records], dtype=object)
    runs["status"] = [r.get("status") or "unknown" for r in records]
    runs["error"] = [str(e).strip().splitlines()[0] if e else "" for e in (r.get("error") for r in records)]
    for m in METRICS:
        if m.key in runs:
            runs[m.key] = pd.to_numeric(runs[m.key], errors="coerce")
    # Random weights measure memory and speed only: their scores mean nothing and are never reported.
    random = runs["weights"] == "random"
    for key in [c for c in runs if c.startswith("eval/") and c not in GROUP_KEYS]:  # eval/split stays
        runs[key] = runs[key].astype(object).where(~random, None) if key in ITEM_KEYS else runs[key].where(~random)
    runs["label"] = _labels(runs)
    return runs


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: run counts, mean and sample std over its successful seeds, the paired test.

    Columns: GROUP_KEYS, label, runs_ok, runs_total, seeds, then `<key>` and `<key>_std` for every schema
    metric present and every other numeric `eval/*` key, then TEST_COLUMNS and failures.
    """
    keys = list(GROUP_KEYS)
    ok = runs[runs["status"] == "success"]
    schema = [m.key for m in METRICS if m.key in runs]
    extra = [
        c
        for c in runs
        if c.startswith("eval/")
        and c not in schema
        and pd.api.types.is_numeric_dtype(runs[c])
        and not pd.api.types.is_bool_dtype(runs[c])
    ]
    values = schema + sorted(extra)
    by_config = ok.groupby(keys, sort=False)
    summary = runs.groupby(keys, sort=False).agg(label=("label", "first"), runs_total=("status", "size"))
    summary.insert(1, "runs_ok", by_config.size().reindex(summary.index, fill_value=0))
    summary["seeds"] = by_config["seed"].agg(lambda s: ",".join(map(str, sorted(s.dropna()))))
    if values:
        stats = by_config[values].agg(["mean", "std"])  # std: ddof=1, NaN for a single seed
        stats.columns = [key if how == "mean" else f"{key}_std" for key, how in stats.columns]
        summary = summary.join(stats)
    members = dict(list(by_config))
    tests = [_paired(members[i]) if i in members else {} for i in summary.index]
    summary = summary.join(pd.DataFrame(tests, index=summary.index, columns=TEST_COLUMNS))
    failed = runs[runs["status"] != "success"]
    notes = [f"seed {r.seed}: {r.status}" + (f": {r.error}" if r.error else "") for r in failed.itertuples()]
    failures = pd.Series(notes, index=failed.index, dtype=object).groupby([failed[k] for k in keys], sort=False)
    summary = summary.join(failures.agg("; ".join).rename("failures")).reset_index()
    summary["eval/p_holm"] = holm(summary["eval/p"].astype(float))
    summary["eval/significant"] = summary["eval/p_holm"] < ALPHA
    summary["failures"] = summary["failures"].fillna("")
    return summary


def _paired(members: pd.DataFrame) -> dict:
    """Interval of the (seed-averaged) per-item accuracy and the paired test against the base model."""
    lists = {k: [x for x in members[k] if isinstance(x, list) and x] if k in members else [] for k in ITEM_KEYS}
    items, base = lists["eval/items"], lists["eval/base_items"]
    out: dict = {}
    try:
        if items:
            acc = combine_seeds(items)
            out["eval/accuracy_ci_low"], out["eval/accuracy_ci_high"] = accuracy_interval(acc)
            if base:
                # The base is scored once per model and eval setting, so its items repeat across seeds.
                test = paired_test(acc, combine_seeds(base))
                out.update(
                    {
                        "eval/delta_ci_low": test.ci_low,
                        "eval/delta_ci_high": test.ci_high,
                        "eval/test": test.test,
                        "eval/p": test.p,
                    }
                )
    except (TypeError, ValueError) as e:  # lists of different lengths, or an item that is not a number
        log.warning("bench.report: no paired test for %s: %s", members["label"].iloc[0], e)
    return out


# Rows compared head to head differ in these keys only: the method and its own settings (a tuned
# rate, beta). Rows that differ in model, task, quantization, rank or split answer another question.
PAIR_FREE = ("method", "overrides")
PAIR_COLUMNS = ["better", "worse", "delta", "delta_ci_low", "delta_ci_high", "test", "p", "p_holm", "significant"]


def pairwise(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Row against row: for every two rows that differ only in method (and its settings) and were scored
    on the same items, the paired test of their seed-averaged per-item scores, Holm-adjusted over all
    pairs. Each pair is written better-first (delta >= 0); `significant` says the order is not noise.
    """
    keys = list(GROUP_KEYS)
    ok = runs[runs["status"] == "success"]
    labels = summary.set_index(keys)["label"]
    scores = {}
    if "eval/items" in ok:
        for key, group in ok.groupby(keys, sort=False):
            lists = [x for x in group["eval/items"] if isinstance(x, list) and x]
            try:
                scores[key] = combine_seeds(lists) if lists else None
            except ValueError as e:  # seeds scored different item counts: no pair for this row
                log.warning("bench.report: no pairwise test for %s: %s", labels.get(key, key), e)
    scored = {k: v for k, v in scores.items() if v is not None}
    block = [i for i, k in enumerate(keys) if k not in PAIR_FREE]
    pairs = []
    for i, a in enumerate(list(scored)):
        for b in list(scored)[i + 1 :]:
            if [a[j] for j in block] != [b[j] for j in block] or len(scored[a]) != len(scored[b]):
                continue
            hi, lo = (b, a) if scored[b].mean() > scored[a].mean() else (a, b)
            test = paired_test(scored[hi], scored[lo])
            pairs.append([labels[hi], labels[lo], test.delta, test.ci_low, test.ci_high, test.test, test.p])
    frame = pd.DataFrame(pairs, columns=PAIR_COLUMNS[:-2])
    frame["p_holm"] = holm(frame["p"].astype(float)) if len(frame) else []
    frame["significant"] = frame["p_holm"] < ALPHA
    return frame


def pairs_markdown(pairs: pd.DataFrame) -> list[str]:
    """The "Method against method" section of summary.md (nothing when fewer than two rows compare)."""
    if pairs.empty:
        return []
    table = pd.DataFrame(
        {
            "better": pairs["better"],
            "than": pairs["worse"],
            "delta [95% CI]": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(pairs["delta"], pairs["delta_ci_low"], pairs["delta_ci_high"], strict=True)
            ],
            "p (Holm)": [f"{p:.2g}" for p in pairs["p_holm"]],
            "verdict": ["better" if s else "within noise" for s in pairs["significant"]],
        }
    )
    return [
        "",
        "## Method against method",
        "",
        table.to_markdown(index=False, disable_numparse=True),
        "",
        f"Rows that differ only in method and its settings, on the same items: the paired test of their "
        f"seed-averaged per-item scores (as against the base), Holm-adjusted over the {len(pairs)} pairs. "
        f"**better** when adjusted p < {ALPHA}; **within noise** says these items cannot order the two.",
    ]


def fairness_audit(runs: pd.DataFrame) -> list[audit.Difference]:
    """The audit over the report's rows: each row's successful runs, by label (bench.report.audit)."""
    ok = runs[runs["status"] == "success"]
    columns = [c for c in ok if c.startswith(("fair/", "versions/")) or c == "model/moe"]
    rows = {
        label: [{k: v for k, v in r.items() if not _missing(v)} for r in group[columns].to_dict("records")]
        for label, group in ok.groupby("label", sort=False)
    }
    return audit.audit(rows)


def data_notes(runs: pd.DataFrame) -> list[str]:
    """What the prompt budget cut and what any trainer dropped, said once under the table."""
    notes = []
    ok = runs[runs["status"] == "success"]
    if "data/truncated_prompts" in ok and (ok["data/truncated_prompts"].fillna(0) > 0).any():
        cut = ok[ok["data/truncated_prompts"] > 0]
        labels = ", ".join(dict.fromkeys(cut["label"]))
        notes.append(
            f"**Prompt budget:** up to {int(cut['data/truncated_prompts'].max())} of {int(cut['train/prompts'].max())} "
            f"training prompts were cut to their last {int(cut['fair/max_prompt_length'].max())} tokens "
            f"(train.max_prompt_length; the longest was {int(cut['data/max_prompt_tokens'].max())}), the same "
            f"prompts for every method, in: {labels}."
        )
    if "data/dropped_by_trainer" in ok and (ok["data/dropped_by_trainer"].fillna(0) > 0).any():
        dropped = ok[ok["data/dropped_by_trainer"] > 0]
        notes.append(
            "**Dropped by the trainer:** "
            + "; ".join(
                f"{r['label']} (seed {r['seed']}): {int(r['data/dropped_by_trainer'])} rows"
                for _, r in dropped.iterrows()
            )
            + " (TRL's own preprocessing; data/dropped_by_trainer)."
        )
    return ["", *notes] if notes else []


def memory_markdown(summary: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """The "Memory at the peak" section: each row's peak split into its parts (schema.MEMORY_PARTS, which
    sum to the peak), what the peak moment was inside, and the share nothing counted ("left over").
    Nothing when no row recorded the split (runs made before the saved-tensor measurement)."""
    if "mem/activations_bytes" not in summary or summary["mem/activations_bytes"].isna().all():
        return []
    ok = runs[runs["status"] == "success"]
    # Where the peak fell, by row: "step" or "generation", or both when seeds disagree.
    during = {}
    if "mem/peak_during" in ok:
        for label, group in ok.groupby("label", sort=False):
            during[label] = "/".join(sorted(set(group["mem/peak_during"].dropna().astype(str)))) or "–"
    mib = 1 / 2**20

    def cell(row, key, scale=mib, spec=".0f"):
        v = row.get(key)
        return "–" if _missing(v) else f"{v * scale:{spec}}"

    # Autocast's weight copies exist under bf16/fp16 alone (full fine-tuning above all): a column only then.
    copies = "mem/autocast_copies_bytes" in summary and bool((summary["mem/autocast_copies_bytes"] > 0).any())
    rows = []
    for _, row in summary.iterrows():
        if pd.isna(row.get("mem/activations_bytes")) or pd.isna(row.get("sys/peak_mem_bytes")):
            continue
        state = sum(row.get(k, 0) or 0 for k in MEMORY_PARTS[1:5])  # weights, trainable, gradients, optimizer
        peak = row["sys/peak_mem_bytes"]
        rows.append(
            {
                "configuration": row["label"],
                "peak (GiB)": f"{peak / GiB:.2f}",
                "peak during": during.get(row["label"], "–"),
                "runtime (MiB)": cell(row, "mem/runtime_bytes"),
                "weights, grads, optimizer (MiB)": f"{state * mib:.0f}",
                "saved activations (MiB)": cell(row, "mem/activations_bytes"),
                "saved logits (MiB)": cell(row, "mem/logits_bytes"),
                **({"autocast weight copies (MiB)": cell(row, "mem/autocast_copies_bytes")} if copies else {}),
                "KV cache at peak / largest (MiB)": f"{cell(row, 'mem/kv_cache_bytes')} / "
                f"{cell(row, 'mem/max_kv_cache_bytes')}",
                "left over (MiB)": cell(row, "mem/other_bytes"),
                "left over (% of peak)": f"{100 * (row.get('mem/other_bytes') or 0) / peak:.1f}",
            }
        )
    if not rows:
        return []
    return [
        "",
        "## Memory at the peak",
        "",
        pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True),
        "",
        "The parts sum to the peak (means over seeds). **peak during**: whether the peak moment was inside a "
        "training step or a `generate()` call; inside a step, the tensors saved for backward are measured "
        "(activations, and vocabulary-wide logits and the weight copies autocast makes in bf16 apart), inside "
        "generation the KV cache is counted from "
        "its shapes (its largest size anywhere in the run is given beside it). **left over**: what no "
        "part accounts for: on CPU, backward's transient gradients and blocks the allocator keeps after a "
        "free; on CUDA, the caching allocator's fragmentation and temporaries.",
    ]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def to_markdown(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    plots: Sequence[Path],
    skipped: dict[str, str],
    differences: list | None = None,
    pairs: pd.DataFrame | None = None,
) -> str:
    """summary.md: the comparison table, the failed runs, and what the columns and marks mean."""
    shown = [k for k in GROUP_KEYS if k == "method" or summary[k].nunique() > 1]
    same = ", ".join(f"{k} {summary[k].iloc[0]}" for k in GROUP_KEYS if k not in shown and summary[k].iloc[0])
    table = {k: summary[k].replace("", "–") for k in shown}
    table["runs"] = summary["runs_ok"].astype(str) + "/" + summary["runs_total"].astype(str)
    for m in METRICS:
        if m.show and m.key in summary and summary[m.key].notna().any():
            cells = [m.format(v, s) for v, s in zip(summary[m.key], summary[f"{m.key}_std"], strict=True)]
            if m.key == "eval/accuracy":
                low, high = summary["eval/accuracy_ci_low"], summary["eval/accuracy_ci_high"]
                cells = [
                    c + (f" [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else "")
                    for c, lo, hi in zip(cells, low, high, strict=True)
                ]
                table[f"{m.label} [95% CI]"] = cells
                continue
            if m.key == "eval/delta":
                cells = [c + ("*" if sig else "") for c, sig in zip(cells, summary["eval/significant"], strict=True)]
            table[m.header] = cells
    if summary["eval/p"].notna().any():
        table["p (Holm)"] = [f"{p:.2g}" if pd.notna(p) else "–" for p in summary["eval/p_holm"]]
    n_ok = int((runs["status"] == "success").sum())
    lines = [
        "# rft-bench report",
        "",
        f"{len(runs)} runs, {n_ok} succeeded, {len(runs) - n_ok} did not." + (f" Every row: {same}." if same else ""),
        "",
        pd.DataFrame(table).to_markdown(index=False, disable_numparse=True),
    ]
    lines += data_notes(runs)
    failed = runs[runs["status"] != "success"]
    if len(failed):
        rows = failed[["label", "seed", "status", "error", "path"]].rename(columns={"label": "configuration"})
        lines += ["", "## Failed runs", "", rows.to_markdown(index=False, disable_numparse=True)]
    if differences is not None and summary["label"].nunique() > 1:
        lines += ["", audit.to_markdown(differences)]
    if pairs is not None:
        lines += pairs_markdown(pairs)
    lines += memory_markdown(summary, runs)
    lines += predicted_markdown(runs)
    n_tests = int(summary["eval/p"].notna().sum())
    lines += [
        "",
        "## Legend",
        "",
        "- Each row is one configuration; values are the mean over its successful seeds, ± the sample "
        "standard deviation (ddof=1) when there are several. **runs**: succeeded/total.",
        "- **accuracy [95% CI]**: the interval comes from the per-item results: Wilson for one seed's 0/1 "
        "items, otherwise a t-interval of the items' seed-averaged scores (it covers item sampling, not "
        "seed-to-seed variation, which the ± gives).",
        "- **delta**: accuracy minus the base model's on the same items. **p (Holm)**: two-sided paired "
        "test against the base model on the same items (exact McNemar on 0/1 items; a sign-flip "
        "permutation test with 10,000 draws on fractional or seed-averaged items), Holm-adjusted over "
        f"the {n_tests} rows tested. **\\*** marks adjusted p < {ALPHA}: the difference from the base "
        "model is unlikely to be noise. summary.csv adds delta's 95% paired-bootstrap interval.",
        "- **full total**: the run's wall time plus the original cost of the cached shared work it reused "
        "(offline data, base score): what the row would cost alone.",
        "- Random-weight runs never report accuracy. summary.csv and summary.json hold every metric and "
        "the intervals; summary.json also holds every run.",
        "",
        "Plots: " + (", ".join(p.name for p in plots) or "none") + ".",
    ]
    lines += [f"Not drawn: {name} ({why})." for name, why in skipped.items()]
    return "\n".join(lines)


def write_report(
    folders: Sequence[Path | str],
    out: Path | str | None = None,
    *,
    wandb: bool | None = False,
    project: str = "rft-bench",
    entity: str | None = None,
    group: str | None = None,
    mode: str | None = None,
) -> Report | None:
    """Read the runs below `folders` and write the report into `out` (default: the first folder).

    Returns None when there is no metrics.json; raises BenchError for a folder that does not exist.
    `wandb=None` logs to W&B when WANDB_MODE (or `mode`) is not 'disabled' and the runs used the W&B
    logger (a run folder holds wandb/); the W&B group defaults to the output folder's name.
    """
    runs = load_runs(folders)
    if runs.empty:
        return None
    out = Path(out or folders[0])
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(runs)
    plots, skipped = make_plots(runs, summary, out)
    differences = fairness_audit(runs)
    undeclared = [d.setting for d in differences if not d.declared]
    if undeclared and summary["label"].nunique() > 1:
        log.warning(
            "bench.report: undeclared differences between rows: %s (see 'Fairness audit' in %s)",
            ", ".join(undeclared),
            out / "summary.md",
        )
    pairs = pairwise(runs, summary)
    text = to_markdown(summary, runs, plots, skipped, differences, pairs)
    extra = sections(folders)  # a study's folder (a tuning study: its grid, picks and test rows)
    if extra:
        text = "\n\n".join([text, *extra])
    cache.write_text(out / "summary.md", text + "\n")
    cache.write_text(out / "summary.csv", summary.to_csv(index=False))
    records = {
        "folders": [str(f) for f in folders],
        "alpha": ALPHA,
        "summary": _records(summary),
        "pairs": _records(pairs),
        "fairness": [
            {"setting": d.setting, "declared": d.declared, "declared_by": d.declared_by, "values": d.values}
            for d in differences
        ],
        # Each run's full TRL config stays in its own metrics.json; the audit above compares them.
        "runs": _records(runs.drop(columns=[*ITEM_KEYS, "fair/trl_config"], errors="ignore")),
        "plots": [p.name for p in plots],
        "skipped_plots": skipped,
    }
    cache.write_json(out / "summary.json", records, indent=1)
    files = [out / "summary.md", out / "summary.csv", out / "summary.json", *plots]
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    if wandb is None:
        wandb = any((Path(p) / "wandb").is_dir() for p in runs["path"])
    wandb_dir = None
    if wandb and mode != "disabled":
        wandb_dir = log_wandb(summary, plots, out, group or out.resolve().name, project, mode, entity)
    return Report(runs, summary, text, files, skipped, wandb_dir)


def log_wandb(
    summary: pd.DataFrame,
    plots: Sequence[Path],
    out_dir: Path,
    group: str,
    project: str = "rft-bench",
    mode: str | None = None,
    entity: str | None = None,
) -> str:
    """Log the summary as a wandb.Table ("comparison") and the plots as images, in a run of the sweep's group.

    Returns the W&B run folder; offline (the default) it is `out_dir/wandb/offline-run-*`.
    """
    import wandb

    table = wandb.Table(dataframe=summary.astype(object).where(summary.notna(), None))
    with wandb.init(
        project=project,
        entity=entity,
        group=group,
        name=f"report-{group}",
        job_type="report",
        dir=str(out_dir),
        mode=mode or os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]  # wandb checks the value itself
        reinit="finish_previous",
        settings=wandb.Settings(silent=True),  # the table is in its files; summary.md says where
    ) as run:
        run.log({"comparison": table, **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots}})
        return str(Path(run.dir).parent)


def _records(frame: pd.DataFrame) -> list[dict]:
    # Through pandas' JSON writer: NaN becomes null and numpy scalars become plain numbers.
    return json.loads(frame.to_json(orient="records"))


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _labels(runs: pd.DataFrame) -> pd.Series:
    """A short name per configuration from the keys that vary across the runs (the method always)."""
    varying = [k for k in GROUP_KEYS if k == "method" or runs[k].nunique() > 1]
    return runs[varying].apply(
        lambda row: " ".join(
            v if k == "method" else _short_overrides(v) if k == "overrides" else f"{SHORT.get(k, k)}={v or '–'}"
            for k, v in row.items()
        ),
        axis=1,
    )


def _short_overrides(text: str) -> str:
    """`train.args.learning_rate=3e-4 method.args.beta=0.2` -> `learning_rate=3e-4 beta=0.2` in labels."""
    return re.sub(r"\b(?:train|method)\.args\.", "", text) or "–"


def _natural(text: str) -> list:
    # 10_grpo after 9_dpo: Hydra numbers its job folders without padding.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep or run folders holding metrics.json files")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first folder)")
    parser.add_argument("--wandb", action="store_true", help="also log the table and plots to W&B (WANDB_MODE applies)")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.folders, args.out, wandb=args.wandb)
    except BenchError as e:
        print(e, file=sys.stderr)
        return 2
    if report is None:
        print(f"bench.report: no metrics.json below {', '.join(map(str, args.folders))}.", file=sys.stderr)
        return 1
    print(report.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
