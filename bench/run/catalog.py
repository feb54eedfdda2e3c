"""`python -m bench --list` (and `make list`): what there is to run, one line each: the methods with
their trainer, adapter and whether the installed TRL has it; the tasks, models and experiments; every
other group's choices; the entry points. Read from conf/ and the registries, so it is never out of date."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from omegaconf import OmegaConf

import methods
from bench.config.compose import CONF_DIR, choices, groups

# Every command a user runs, with what it does (make targets: `make help`).
ENTRY_POINTS = {
    "python -m bench [overrides] [-m]": "one run, or a sweep with -m; the report at the sweep's end",
    "python -m bench --list": "this list",
    "python -m bench.report DIR [DIR ...]": "tables, plots and tests from finished run folders",
    "python -m bench.recipe.evaluate RUN/adapter": "score a trained adapter or model with lm-eval",
    "python -m bench.estimate [overrides]": "each method's peak by part, from config.json: fits 24/40/80 GiB?",
    "python -m bench.studies.estimate_check": "the estimate against measured runs, part by part",
    "python -m bench.studies.params [overrides]": "the exact LoRA parameter count beside the 2·r·d formula, offline",
    "python -m bench.studies.tune tune=NAME --out DIR": "each method's learning rate and knob, picked on validation",
    "python -m bench.studies.claims [DIR]": "the field's claims, each judged by its rule on its sweep",
    "python -m bench.studies.decode": "one decode step per generation path beside the machine's bound",
    "python -m bench.studies.serving": "adapter serving: unmerged, merged and switching latencies",
    "python -m bench.studies.overhead": "the harness against plain TRL at the same settings",
    "python -m bench.studies.fallbacks": "how often the offline data falls back to the gold answer",
    "python -m bench.studies.gpu_check": "every CUDA path at smoke size on one GPU (make gpu-check)",
    "python -m bench.system.cache verify": "verify the shared caches: every entry's sizes and hashes (verify [root])",
}


def describe(path: Path) -> str:
    """A YAML's description: its first comment line that is not a Hydra directive."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            return text.lstrip("# ").rstrip()
    return ""


def method_rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for path in sorted((CONF_DIR / "method").glob("*.yaml")):
        entry = OmegaConf.load(path)
        name = path.stem
        adapter = methods.adapter_name(entry) if "name" in entry else name
        try:
            method = methods.get(adapter)
        except KeyError:
            rows.append((name, "?", adapter, "-", "no adapter registered", describe(path)))
            continue
        trainer = method.config.split(":")[1].removesuffix("Config") + "Trainer"
        has = "yes" if method.unavailable() is None else f"no: needs {method.needs or 'another TRL'}"
        rows.append((name, trainer, adapter, method.data, has, describe(path)))
    return rows


def group_rows(group: str) -> list[tuple[str, str]]:
    folder = CONF_DIR / group
    return [(str(p.relative_to(folder).with_suffix("")), describe(p)) for p in sorted(folder.glob("**/*.yaml"))]


def table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    widths[-1] = 0  # the description runs to the line's end
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in [headers, *rows])


def render() -> str:
    parts = [
        f"Methods (conf/method/; installed TRL {version('trl')}):",
        table(("method", "trainer", "adapter", "data", "on this TRL", "what it is"), method_rows()),
    ]
    for group, title in (("task", "Tasks"), ("model", "Models"), ("experiment", "Experiments")):
        parts += ["", f"{title} (conf/{group}/):", table((group, "what it is"), group_rows(group))]
    # The smaller groups, one line each: every name a command line can choose is on this list.
    rest = [g for g in groups() if g not in ("method", "task", "model", "experiment")]
    parts += [
        "",
        "Other groups (conf/<group>/):",
        table(("group", "choices"), [(g, ", ".join(choices(g))) for g in rest]),
    ]
    parts += [
        "",
        "Entry points (make help: the make targets):",
        table(("command", "what it does"), list(ENTRY_POINTS.items())),
    ]
    return "\n".join(parts)


def main() -> int:
    print(render())
    return 0
