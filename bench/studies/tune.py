"""Each method at its own best learning rate and main knob, picked on the validation split.

    python -m bench.studies.tune tune=headline --out results/reference/tuning-headline-smollm2-arithmetic-cpu --write
    python -m bench.studies.tune tune=smoke debug=smoke --out /tmp/tune-smoke   # 2 methods, 2 points
    python -m bench.report results/tuning/headline      # the grid, the scores, the picks, the test rows

The spec is `conf/tune/<name>.yaml`; any other override (debug=smoke, model=...) applies to every run.
Stages, each a plain Hydra grid sweep of `python -m bench` in its own subfolder, so every stage is
resumable (rerun the same command: finished runs are skipped) and reportable on its own:
  1. `lr/`: every method × the learning-rate grid, one seed, scored on validation;
  2. `knob-<method>/`: at each method's picked rate, the other values of its own main knob (DPO's beta,
     PPO's kl_coef...); the knob's default value at that rate is stage 1's run;
  3. `final/`: the picked settings on `final_seeds`, scored on test, as `tuned=<out>/tuned.yaml`.
Selection reads validation scores only (`select` refuses anything else); the test split is scored once,
after every choice is made. The picks go to `<out>/tuned.yaml` and `<out>/tune.json`; `--write` also
writes `conf/experiment/tuned.yaml`, which later sweeps reuse as `experiment=tuned`.

Why a plain grid rather than hydra-optuna-sweeper: its 1.3.0 release still requires optuna < 3 (2021),
which would pin a four-year-old optuna into the lock, and this search is coordinate-wise (stage 2 depends
on stage 1's pick), which a single sweeper run over a joint space does not express. `python -m bench`
still returns the run's accuracy, so an Optuna sweeper can drive it unchanged for users who want TPE.
"""

from __future__ import annotations

import argparse
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import yaml

from bench import BenchError
from bench.config import history
from bench.config.compose import compose
from bench.records import store
from bench.records.store import git_info, provenance
from bench.report.sections import register_section
from bench.report.stats import accuracy_interval, combine_seeds
from bench.system import cache, files

log = logging.getLogger(__name__)
SELECTION_SPLIT = "validation"
EXPERIMENT = Path(__file__).resolve().parents[2] / "conf" / "experiment" / "tuned.yaml"


# ---- selection (pure: tested on made-up records) ---------------------------------------------------


def select(records: list[dict], key: str, metric: str = "eval/accuracy") -> dict:
    """The best value of `key` among these runs by validation `metric`: {"value", "score", "points"}.

    Only successful runs scored on the validation split count; a run scored on any other split is an
    error, so nothing can select on test. Failed or diverged points are listed but never picked. Ties go
    to the smaller value (the more conservative step size or the weaker knob).
    """
    points = []
    for record in records:
        split = record.get("eval/split")
        if record.get("status") == "success" and split != SELECTION_SPLIT:
            raise BenchError(
                f"selection was handed a run scored on {split!r} ({record.get('output_dir')}): tuning "
                f"selects on {SELECTION_SPLIT} only, so that the test split never informs a choice."
            )
        score = record.get(metric) if record.get("status") == "success" else None
        points.append(
            {
                "value": record["_value"],
                "score": score,
                "status": record.get("status"),
                "n": record.get("eval/n"),
                "path": record.get("output_dir"),
            }
        )
    scored = [p for p in points if p["score"] is not None and not math.isnan(p["score"])]
    if not scored:
        raise BenchError(f"no grid point of {key} finished with a validation score: nothing to pick.")
    best = max(scored, key=lambda p: (p["score"], -float(p["value"])))
    return {
        "key": key,
        "value": best["value"],
        "score": best["score"],
        "points": sorted(points, key=lambda p: float(p["value"])),
    }


# ---- the stages ------------------------------------------------------------------------------------


def _sweep(out: Path, overrides: list[str]) -> None:
    """One Hydra grid sweep of the harness into `out` (resumable: finished runs are skipped)."""
    cmd = [sys.executable, "-m", "bench", "-m", *overrides, f"hydra.sweep.dir={out}"]
    log.info("tune: %s", " ".join(cmd[2:]))
    proc = subprocess.run(cmd)
    # 1: a run in the sweep failed (recorded in its folder, shown in the stage's report); a grid point
    # that diverges is an answer, not an error. Anything else ended the sweep itself.
    if proc.returncode not in (0, 1) or not any(out.rglob("metrics.json")):
        raise BenchError(f"the sweep into {out} ended with code {proc.returncode}; see its output above.")


def _records(folder: Path) -> list[dict]:
    """The runs below `folder`, each with `_dir`: where it lies now (its recorded output_dir is where it
    was written, on the machine that ran it)."""
    return [store.read(p) | {"_dir": p.parent} for p in sorted(folder.rglob("metrics.json"))]


def _value_of(record: dict, key: str):
    """The value a run had for `key`, read from its own resolved config."""
    from omegaconf import DictConfig, OmegaConf

    cfg = history.complete(cast(DictConfig, OmegaConf.load(Path(record["_dir"]) / "config_resolved.yaml")))  # a mapping
    return OmegaConf.select(cfg, key)


def _points(folder: Path, method: str, key: str, fixed: dict | None = None) -> list[dict]:
    """The runs of `method` below `folder` whose other tuned keys equal `fixed`, tagged with their value."""
    out = []
    for record in _records(folder):
        if record.get("method") != method or not (Path(record["_dir"]) / "config_resolved.yaml").exists():
            continue
        if any(_value_of(record, k) != v for k, v in (fixed or {}).items()):
            continue
        out.append({**record, "_value": _value_of(record, key)})
    return out


def _fmt(value) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def tune(spec: dict, run_overrides: list[str], out: Path, final: bool = True, on_picks=None) -> dict:
    """Run the stages and return the study's record (also written to `<out>/tune.json`).

    `on_picks(study)` is called once the picks are written, before the test-split runs: the picks are
    usable (`experiment=tuned`) even while, or if, the final stage is still to finish.
    """
    stamp = provenance()  # before the study writes anything: the worktree as it started

    methods, lr_key = list(spec["methods"]), spec["lr_key"]
    base = [f"experiment={spec['experiment']}", *run_overrides] if spec.get("experiment") else list(run_overrides)
    common = [*base, f"eval.split={SELECTION_SPLIT}", f"seed={spec['seed']}"]
    grid = ",".join(_fmt(float(v)) for v in spec["learning_rates"])
    _sweep(out / "lr", [*common, f"method={','.join(methods)}", f"{lr_key}={grid}"])
    picks, study = {}, dict[str, Any](spec=spec, run_overrides=run_overrides, methods={})
    for method in methods:
        lr = select(_points(out / "lr", method, lr_key), lr_key)
        entry: dict[str, Any] = {"stages": [lr]}
        picked = {lr_key: lr["value"]}
        knob = (spec.get("knobs") or {}).get(method)
        if knob:
            default = compose([*base, f"method={method}"])
            from omegaconf import OmegaConf

            current = OmegaConf.select(default, knob["key"])
            others = [v for v in knob["values"] if v != current]
            folder = out / f"knob-{method}"
            if others:
                _sweep(
                    folder,
                    [
                        *common,
                        f"method={method}",
                        f"{lr_key}={_fmt(lr['value'])}",
                        f"{knob['key']}={','.join(_fmt(v) for v in others)}",
                    ],
                )
            # The default knob value at the picked rate is stage 1's run: no need to train it twice.
            candidates = [p for p in _points(out / "lr", method, knob["key"], {lr_key: lr["value"]})]
            if folder.is_dir():
                candidates += _points(folder, method, knob["key"], {lr_key: lr["value"]})
            best = select(candidates, knob["key"])
            entry["stages"].append(best)
            picked[knob["key"]] = best["value"]
        entry["picked"] = picked
        entry["validation_score"] = entry["stages"][-1]["score"]
        picks[method] = picked
        study["methods"][method] = entry
    tuned_file = out / "tuned.yaml"
    cache.write_text(tuned_file, yaml.safe_dump({"tuned": picks}, sort_keys=False))
    study["tuned_file"] = str(tuned_file)
    cache.write_json(out / "tune.json", study | {"provenance": stamp}, indent=1)
    if on_picks is not None:
        on_picks(study)
    if final:
        seeds = ",".join(str(s) for s in spec["final_seeds"])
        _sweep(
            out / "final",
            [*base, f"tuned={tuned_file}", "eval.split=test", f"method={','.join(methods)}", f"seed={seeds}"],
        )
    return study


def experiment_file(study: dict, command: str, commit: str | None) -> str:
    """conf/experiment/tuned.yaml: the tuned experiment on top of the one that was tuned."""
    lines = [
        "# @package _global_",
        "# Each method at its own learning rate (and main knob), picked on the validation split by",
        f"#   {command}",
        f"# at commit {commit or 'unknown'}; the scores behind each pick are in the study's tune.json.",
        "# Reuse: python -m bench -m experiment=tuned 'method=grpo,ppo,dpo,kto,orpo' seed=0,1,2",
    ]
    if study["spec"].get("experiment"):
        lines += ["defaults:", f"  - {study['spec']['experiment']}   # the experiment that was tuned", "  - _self_"]
    body = yaml.safe_dump({"tuned": {m: e["picked"] for m, e in study["methods"].items()}}, sort_keys=False)
    return "\n".join(lines) + "\n" + body


# ---- the report's section --------------------------------------------------------------------------


@register_section("tuning")
def section(folder: Path) -> str | None:
    """The "Tuning" section of `bench.report` for a study folder (one holding tune.json), else None."""
    path = Path(folder) / "tune.json"
    if not path.is_file():
        return None
    from bench.report.summary import load_runs

    study = files.read_json(path, "It is the study's own summary: rerun `make tune` to rewrite it.")
    final = load_runs([folder / "final"]) if (folder / "final").is_dir() else None
    lines = [
        "## Tuning",
        "",
        f"Picked on the {SELECTION_SPLIT} split (seed {study['spec']['seed']}); "
        "the test split was scored only with the picked settings (`final/`).",
    ]
    for method, entry in study["methods"].items():
        lines += [
            "",
            f"**{method}**: picked "
            + ", ".join(f"`{k}={_fmt(v)}`" for k, v in entry["picked"].items())
            + f" (validation {entry['validation_score']:.3f})",
            "",
            "| stage | value | validation accuracy | n | status |",
            "|---|---|---|---|---|",
        ]
        for stage in entry["stages"]:
            for p in stage["points"]:
                mark = " ←" if p["value"] == stage["value"] else ""
                score = "–" if p["score"] is None else f"{p['score']:.3f}"
                lines.append(
                    f"| `{stage['key']}` | {_fmt(p['value'])}{mark} | {score} | {p['n'] or '–'} | {p['status']} |"
                )
        if final is not None and not final.empty:
            rows = final[(final["method"] == method) & (final["status"] == "success")]
            items = [x for x in rows.get("eval/items", []) if isinstance(x, list) and x]
            if len(rows) and items:
                acc = rows["eval/accuracy"]
                low, high = accuracy_interval(combine_seeds(items))
                std = f" ± {acc.std():.3f}" if len(rows) > 1 else ""
                lines.append(
                    f"\nTest with the picked settings: {acc.mean():.3f}{std} over {len(rows)} "
                    f"seed(s) [{low:.3f}, {high:.3f}]."
                )
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.tune", description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", help="tune=<spec> and tune.* overrides; every other one goes to each run"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the study's folder (rerun with the same one to resume)"
    )
    parser.add_argument(
        "--write", action="store_true", help=f"also write {EXPERIMENT.relative_to(EXPERIMENT.parents[2])}"
    )
    parser.add_argument("--no-final", action="store_true", help="stop after the picks (no test-split runs)")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    mine = [o for o in args.overrides if o.lstrip("+").split("=", 1)[0].split(".")[0] == "tune"]
    runs = [o for o in args.overrides if o not in mine]
    try:
        cfg = compose(mine)
        if not cfg.get("tune"):
            raise BenchError("name a tuning spec: tune=<name> (conf/tune/<name>.yaml), e.g. tune=headline.")
        spec = cast("dict[str, Any]", OmegaConf.to_container(cfg.tune, resolve=True))
        compose(runs)  # a bad run override fails here, in seconds, before any sweep starts
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python -m bench.studies.tune " + " ".join(argv if argv is not None else sys.argv[1:])

        def write(study: dict) -> None:
            cache.write_text(EXPERIMENT, experiment_file(study, command, git_info().get("git/commit")))
            print(f"wrote {EXPERIMENT}", flush=True)

        study = tune(spec, runs, args.out.resolve(), final=not args.no_final, on_picks=write if args.write else None)
    except BenchError as err:
        print(f"bench.studies.tune: {err}", file=sys.stderr)
        return 2
    for method, entry in study["methods"].items():
        print(
            f"{method}: "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in entry["picked"].items())
            + f" (validation {entry['validation_score']:.3f})"
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
