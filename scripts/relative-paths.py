"""Rewrite the machine paths in committed results as paths relative to the repository (or to the cache).

    python scripts/relative-paths.py [--check]

Records, resolved configs, summaries and study files name the folders they were written in: on the
machine that ran them, absolute paths (/work/<worktree>/results/..., /root/.cache/rft-bench/...). A
committed file must not hold them. Every such path is rewritten: a results folder as `results/...`
(where the run was written, relative to the repository), the harness's cache as `~/.cache/rft-bench`
or `<cache>` (a cache folder given for that sweep), a run's working directory as `.`, a sweep folder
outside the repository as `<sweep>`, any other folder of that machine as `<elsewhere>/<name>`. Nothing that a hash
or a resume reads changes: output_dir and cache_dir are left out of the config hash, and a pipeline's
first stage is hashed by its own config hash (tests/test_hashing.py checks every committed run).
`--check` lists the files that still hold one and exits 1 (tests/test_provenance.py runs it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = r"(?:/work|/tmp|/root|/home|/private|/Users|/mnt|/data|/scratch)"
RULES = [
    (re.compile(ROOTS + r"/[^\s\"',:]*?/results/"), "results/"),  # a results folder in any checkout
    (re.compile(r"/root/\.cache/rft-bench"), "~/.cache/rft-bench"),  # the default cache
    # A sweep written outside the repository and committed later (its PROVENANCE.md says where it lies).
    (re.compile(ROOTS + r"/[^\s\"',:/]+/(?=\d+_[a-z_]+_seed\d)"), "<sweep>/"),
    (re.compile(ROOTS + r"/[^\s\"',:/]*cache[^\s\"',:/]*"), "<cache>"),  # a sweep's own cache folder
    (re.compile(ROOTS + r"/[^\s\"',:/]+/conf\b"), "conf"),  # Hydra's config source in a checkout
    (re.compile(r"(?<=cwd: )" + ROOTS + r"/[^\s\"',:/]+"), "."),  # the working directory: a checkout
    (re.compile(ROOTS + r"/(?=[^\s\"',:/]+)"), "<elsewhere>/"),  # any other folder of that machine
]
FIND = re.compile(ROOTS + r"/[A-Za-z0-9_.-]+")


def committed(folder: str = "results") -> list[Path]:
    # Tracked files and new ones git would add (results just written are not tracked yet).
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", folder],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [REPO / line for line in out.stdout.splitlines() if line.endswith((".json", ".yaml", ".md", ".csv", ".txt"))]


def rewrite(text: str) -> str:
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text


def main(argv: list[str]) -> int:
    files = committed()
    if "--check" in argv:
        left = [str(p.relative_to(REPO)) for p in files if FIND.search(p.read_text(errors="replace"))]
        print("\n".join(left))
        return 1 if left else 0
    changed = 0
    for path in files:
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"rewrote {changed} of {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
