"""Write PROVENANCE.md in every folder under results/reference/, from the files in it.

    python scripts/provenance.py            # (re)write them
    python scripts/provenance.py --check    # exit 1 if one is missing or stale (tests/test_provenance.py)

Nothing is typed by hand but the commands of the few folders whose files do not say how they were made
(COMMANDS below). The rest is read: a sweep's command from its multirun.yaml, a study's from its JSON;
commit, dirty flag, versions and machine from the runs' metrics.json (or the study's JSON); the dates
from the W&B run folders the records name. Only committed files are read, so a fresh clone writes the same.
"""

from __future__ import annotations

import collections
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "results" / "reference"
NAME = "PROVENANCE.md"
# Folders whose own files do not record their command: what produced them (the Makefile's targets).
COMMANDS = {
    "claims-smollm2-arithmetic-cpu": "make claims CLAIMS_DIR=results/reference/claims-smollm2-arithmetic-cpu "
    "(each claim's sweep below, then python -m bench.studies.claims on the folder)",
    "decode-cpu-2core": "python -m bench.studies.decode --out results/reference/decode-cpu-2core/decode.json",
    "fallbacks-headline-seed0": "python -m bench.studies.fallbacks experiment=headline --samples 16 "
    "--temperatures 0.7,1.0 --out results/reference/fallbacks-headline-seed0/fallbacks.json",
    "trl-diff-smollm2-arithmetic-cpu": "make trl-diff (each lock's sweeps below, then one report over both)",
    "tuning-headline-smollm2-arithmetic-cpu": "make tune (python -m bench.studies.tune tune=headline --out "
    "results/reference/tuning-headline-smollm2-arithmetic-cpu --write)",
    "tuning-full-smollm2-arithmetic-cpu": "make tune-full (python -m bench.studies.tune tune=full peft=none --out "
    "results/reference/tuning-full-smollm2-arithmetic-cpu --no-final)",
    "tuning-sft-smollm2-arithmetic-cpu": "make tune-sft (python -m bench.studies.tune tune=sft --out "
    "results/reference/tuning-sft-smollm2-arithmetic-cpu --no-final)",
}


@functools.cache
def kept() -> frozenset[Path]:
    """The files git keeps (tracked, or new and not ignored): what a fresh clone holds once committed."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "results/reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(REPO / line for line in out.splitlines())


MACHINE_KEYS = ("sys/device", "sys/gpu", "sys/platform", "sys/cpu_count", "sys/torch_threads")


def sweeps(folder: Path) -> list[str]:
    out = []
    for path in sorted(p for p in folder.glob("**/multirun.yaml") if p in kept()):
        hydra = yaml.safe_load(path.read_text())["hydra"]
        params = " ".join(f"{k}={v}" for k, v in (hydra["sweeper"].get("params") or {}).items())
        where = path.parent.relative_to(REPO)
        out.append(
            f"python -m bench -m {' '.join(hydra['overrides']['task'])} {params} hydra.sweep.dir={where}".replace(
                "  ", " "
            )
        )
    return out


def studies(folder: Path) -> list[dict]:
    found = []
    for path in sorted(p for p in folder.glob("**/*.json") if p in kept()):
        if path.name in ("metrics.json", "summary.json", "train_log.json") or "wandb" in path.parts:
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict):  # a study's stamp is flat (decode, serving) or under (_)provenance
            stamp = data.get("provenance") or data.get("_provenance") or {}
            found.append(data | stamp | {"_file": path.relative_to(folder)})
    return found


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("**/metrics.json")) if p in kept()]


def tally(values) -> str:
    counts = collections.Counter(values)
    return ", ".join(f"`{v}` ({n})" if len(counts) > 1 else f"`{v}`" for v, n in counts.most_common())


def dates(runs: list[dict]) -> str:
    """When the runs ran, as their own records say (the W&B run folder they name carries the date)."""
    stamps = sorted(
        {
            f"{m[1]}-{m[2]}-{m[3]}"
            for r in runs
            for m in [re.search(r"run-(\d{4})(\d{2})(\d{2})_", str(r.get("wandb/dir") or ""))]
            if m
        }
    )
    if not stamps:
        return "not recorded in its files"
    return stamps[0] if len(stamps) == 1 else f"{stamps[0]} to {stamps[-1]}"


def study_dates(found: list[dict]) -> str:
    stamps = sorted({str(s["date"])[:10] for s in found if s.get("date")})
    return " to ".join(dict.fromkeys([stamps[0], stamps[-1]])) if stamps else "not recorded in its files"


def render(folder: Path) -> str:
    runs, found = records(folder), studies(folder)
    sources = [r for r in runs if r.get("status") == "success"] or runs or found
    commands = sweeps(folder)
    commands += [s["command"] for s in found if isinstance(s.get("command"), str)]
    if folder.name in COMMANDS:
        commands.insert(0, COMMANDS[folder.name])
    lines = [
        f"# Provenance: {folder.name}",
        "",
        "Written by `python scripts/provenance.py` from the files in this folder; do not edit by hand.",
        "",
        f"- **What**: {len(runs)} run records"
        + (f", {len(found)} study file(s) ({', '.join(str(s['_file']) for s in found)})" if found else ""),
        f"- **Date**: {dates(runs) if dates(runs) != 'not recorded in its files' else study_dates(found)}",
    ]
    commits = [s.get("git/commit") for s in sources if s.get("git/commit")]
    lines.append(
        f"- **Commit**: {tally(c[:7] for c in commits)}"
        if commits
        else "- **Commit**: not recorded in these files (written before studies recorded it)"
    )
    dirty = [s.get("git/dirty") for s in sources if "git/dirty" in s]
    lines.append(f"- **Worktree dirty**: {tally(dirty)}" if dirty else "- **Worktree dirty**: not recorded")
    for key in MACHINE_KEYS:
        values = [s[key] for s in sources if s.get(key) is not None]
        if values:
            lines.append(f"- **{key}**: {tally(values)}")
    versions = sorted({k for s in sources for k in s if k.startswith("versions/")})
    if versions:
        lines += [
            "- **Versions**: "
            + "; ".join(f"{k.split('/', 1)[1]} {tally(s.get(k) for s in sources if k in s)}" for k in versions)
        ]
    else:
        lines.append("- **Versions**: not recorded")
    for study in found:  # a study file that says when and at which commit it was written
        if study.get("git/commit") and runs:
            lines.append(
                f"- **{study['_file']}**: written {study.get('date', '')[:10]} at `{study['git/commit'][:7]}` "
                f"(dirty: `{study.get('git/dirty')}`)"
            )
    lines += ["", "## Commands", "", *(f"    {c}" for c in commands or ["not recorded"]), ""]
    lines += [
        "Paths in these files are relative to the repository (`scripts/relative-paths.py`); `<sweep>` and "
        "`<elsewhere>` stand for folders outside it on the machine that ran them.",
        "",
    ]
    return "\n".join(lines)


def folders() -> list[Path]:
    return sorted(p for p in REFERENCE.iterdir() if p.is_dir())


def main(argv: list[str]) -> int:
    stale = []
    for folder in folders():
        text = render(folder)
        path = folder / NAME
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.write_text(text)
    if stale:
        print("missing or stale (run python scripts/provenance.py):\n" + "\n".join(stale))
        return 1
    if "--check" not in argv:
        print(f"wrote {len(folders())} {NAME} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
