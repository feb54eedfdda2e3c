"""The field's claims about reinforcement fine-tuning with LoRA, each measured by its own sweep and judged
by a written rule (bench/studies/claims/rules.py): supported, refuted, or inconclusive at this budget.

A claim is one file here (an `@register(...)`-decorated judge) plus the sweeps it reads, each one
`conf/experiment/claims/<sweep>.yaml` (two claims may read one sweep), run with

    python -m bench -m experiment=claims/<sweep> hydra.sweep.dir=<DIR>/<sweep>

and judged, with every other claim, by `python -m bench.studies.claims <DIR>` (or all of it: `make claims`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.report.stats import combine_seeds
from bench.studies.claims.rules import INCONCLUSIVE, REFUTED, SUPPORTED, Verdict
from bench.system.registry import Registry

__all__ = ["Claim", "Verdict", "register", "names", "get", "side", "SUPPORTED", "REFUTED", "INCONCLUSIVE"]


@dataclass(frozen=True)
class Claim:
    name: str
    text: str  # the claim as the field states it
    source: str  # where it is stated
    rule: str  # what would support it, what would refute it, when it is too weak to say
    judge: Callable[..., Verdict]  # the successful runs of its sweeps (and the root, with measures) -> its verdict
    sweeps: tuple[str, ...]  # conf/experiment/claims/<sweep>.yaml it reads; () for none (the parameter audit)
    # Measurements that are no sweep (a latency benchmark): {file under the claims root: the command that
    # writes it, with {root}}. `make claims` runs each whose file is missing; the judge gets the root.
    measures: dict = field(default_factory=dict)


CLAIMS: Registry[Claim] = Registry("claim", __name__, skip=("rules", "report"))


def register(
    name: str, *, text: str, source: str, rule: str, sweeps: tuple[str, ...] | None = None, measures: dict | None = None
):
    """Register `judge(runs) -> Verdict` as claim `name`, judged on the runs of `sweeps` (default: its own
    name's sweep, conf/experiment/claims/<name>.yaml); with `measures`, `judge(runs, root)`."""
    return CLAIMS.decorator(
        name,
        lambda judge: Claim(
            name, text, source, rule, judge, (name,) if sweeps is None else tuple(sweeps), dict(measures or {})
        ),
    )


def names() -> list[str]:
    return CLAIMS.names()


def get(name: str) -> Claim:
    return CLAIMS.get(name)


# ---- reading a claim's runs ------------------------------------------------------------------------


def runs_of(root: Path, sweeps: tuple[str, ...]) -> pd.DataFrame:
    """The successful runs of these sweeps under `root` (bench.report's loader), with a `sweep` column:
    two sweeps may hold the same configuration (LoRA r=16 in two of them), and a judge picks its side
    from the sweep that varies it."""
    from bench.report.summary import load_runs

    frames = []
    for sweep in sweeps:
        folder = Path(root) / sweep
        if folder.is_dir():
            runs = load_runs([folder])
            if len(runs):
                frames.append(runs[runs["status"] == "success"].assign(sweep=sweep))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["status", "sweep"])


def side(runs: pd.DataFrame, where: dict) -> pd.DataFrame:
    """The runs whose record has every `key: value` of `where` (keys as in metrics.json, e.g. `peft/mode`)."""
    mask = pd.Series(True, index=runs.index)
    for key, value in where.items():
        if key not in runs:
            return runs.iloc[0:0]
        mask &= runs[key].astype(str) == str(value)
    return runs[mask]


def values(runs: pd.DataFrame, metric: str) -> list[float]:
    """One value per seed (a run) of `metric`, missing ones dropped."""
    return [float(v) for v in runs[metric].dropna()] if metric in runs else []


def items(runs: pd.DataFrame, key: str = "eval/items") -> list[float] | None:
    """The seed-averaged per-item scores of these runs (the same items in every seed), or None."""

    lists = [x for x in runs[key] if isinstance(x, list) and x] if key in runs else []
    if not lists:
        return None
    try:
        return list(combine_seeds(lists))
    except ValueError:
        return None


def missing(what: str) -> Verdict:
    return Verdict(INCONCLUSIVE, f"no finished runs for {what}", budget="finish the claim's sweep")
