"""`python -m bench.studies.claims DIR`: every claim's verdict from the sweeps under DIR, with the figures behind
it, what would settle an inconclusive one, a table (DIR/claims.md, .json) and a plot (DIR/claims.png).

`--sweeps` lists the sweeps to run first (one per line), for `make claims`; `--measures DIR` the
commands of the measurements that are no sweep (a latency benchmark) and are not under DIR yet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.records.store import provenance
from bench.studies.claims import Claim, get, names, runs_of
from bench.studies.claims.rules import Verdict, leaves
from bench.system import cache


def verdicts(root: Path) -> dict:
    out: dict[str, tuple[Claim, Verdict | None, str]] = {}  # a claim not yet measured: no verdict, the commands
    for name in names():
        claim = get(name)
        runs = runs_of(root, claim.sweeps)
        todo = [cmd.format(root=root) for file, cmd in claim.measures.items() if not (root / file).is_file()]
        if (claim.sweeps and runs.empty) or todo:
            commands = [f"python -m bench -m experiment=claims/{s} hydra.sweep.dir={root}/{s}" for s in claim.sweeps]
            out[name] = (claim, None, "; ".join(commands + todo))
            continue
        out[name] = (claim, claim.judge(runs, root) if claim.measures else claim.judge(runs), "")
    return out


def measures(root: Path) -> list[str]:
    """The commands of every claim's measurements whose file is not under `root` yet."""
    return [
        cmd.format(root=root) for n in names() for file, cmd in get(n).measures.items() if not (root / file).is_file()
    ]


def table(results: dict) -> str:
    lines = ["| claim | source | verdict | evidence | to settle it |", "|---|---|---|---|---|"]
    for claim, verdict, commands in results.values():
        if verdict is None:
            lines.append(f"| {claim.text} | {claim.source} | not run | – | `{commands}` |")
        else:
            lines.append(
                f"| {claim.text} | {claim.source} | **{verdict.verdict}** | {verdict.evidence} | "
                f"{verdict.budget or '–'} |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path | None:
    """One panel per rule: its interval, its point value and the claim's threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (leaf.figures, leaf.verdict)
        for _, verdict, _ in results.values()
        if verdict
        for leaf in leaves(verdict)
        if {"low", "high", "threshold", "value"} <= set(leaf.figures)
    ]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 0.9 * len(rows) + 0.6), squeeze=False)
    colors = {"supported": "tab:green", "refuted": "tab:red", "inconclusive": "tab:gray"}
    for ax, (f, verdict) in zip(axes[:, 0], rows, strict=True):
        ax.plot([f["low"], f["high"]], [0, 0], color=colors[verdict], linewidth=4)
        ax.plot([f["value"]], [0], "o", color="black")
        ax.axvline(f["threshold"], color="black", linestyle="--", linewidth=1)
        ax.set_yticks([])
        ax.set_title(f"{f['label']} ({verdict})", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.claims", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", help="the folder holding one sweep folder per claim sweep")
    parser.add_argument("--sweeps", action="store_true", help="list the sweeps the claims read, and exit")
    parser.add_argument(
        "--measures",
        action="store_true",
        help="list the commands of the measurements still to make under ROOT, and exit",
    )
    args = parser.parse_args(argv)
    if args.sweeps:
        print("\n".join(sorted({s for n in names() for s in get(n).sweeps})))
        return 0
    if args.root is None:
        parser.error("give the claims folder (e.g. results/claims)")
    stamp = provenance()  # before anything is written: the worktree as the judging found it
    if args.measures:
        print("\n".join(measures(args.root)))
        return 0
    results = verdicts(args.root)
    text = (
        "# Claims\n\n"
        + table(results)
        + "\n\nRules:\n\n"
        + "\n".join(f"- **{claim.name}**: {claim.rule}" for claim, _, _ in results.values())
        + "\n"
    )
    args.root.mkdir(parents=True, exist_ok=True)
    cache.write_text(args.root / "claims.md", text)
    cache.write_json(
        args.root / "claims.json",
        {
            name: {
                "text": c.text,
                "source": c.source,
                "rule": c.rule,
                "verdict": v.verdict if v else "not run",
                "evidence": v.evidence if v else "",
                "figures": v.figures if v else {},
                "budget": v.budget if v else cmd,
                "parts": [
                    {"verdict": p.verdict, "evidence": p.evidence, "figures": p.figures} for p in (v.parts if v else [])
                ],
            }
            for name, (c, v, cmd) in results.items()
        }
        | {"_provenance": stamp},
        indent=1,
    )
    drawn = plot(results, args.root / "claims.png")
    print(text + (f"\nPlot: {drawn}" if drawn else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
