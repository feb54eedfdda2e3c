"""docs/adding-a-method.md, run as written: its code blocks are the files it shows them as, and its worked
examples (EXO, a variant; GMPO, a new trainer) register, validate and train at `model=tiny debug=smoke`,
from a copy of the repository with the page's files added, as a user would add them."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PAGE = REPO / "docs" / "adding-a-method.md"
FILES = {"conf/method/exo.yaml", "methods/gmpo.py", "conf/method/gmpo.yaml"}


def page_files() -> dict[str, str]:
    """Each code block of the page, under the file named at the end of the line before it (`x/y.py`:)."""
    found = re.findall(r"`([\w./-]+\.(?:py|yaml))`:\s*\n+```(?:python|yaml)\n(.*?)```", PAGE.read_text(), flags=re.S)
    return dict(found)


def page_command(method: str) -> list[str]:
    """The page's command for `method`, as its words."""
    (command,) = set(re.findall(rf"`python -m bench (method={method} [^`]*)`", PAGE.read_text()))
    return command.split()


def test_the_pages_adapter_names_its_config_as_a_string_and_imports_its_trainer_in_build():
    """What methods/__init__.py requires of an adapter, read off the page's own block: `register` takes
    the config class as "module:Class" (it splits on the colon), and no trainer is imported with the module."""
    import methods

    files = page_files()
    assert set(files) == FILES
    tree = ast.parse(files["methods/gmpo.py"])
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in tree.body
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in (n.names if isinstance(n, ast.Import) else [n])
    ]
    assert not [m for m in imported if m.split(".")[0] == "trl"], imported
    (build,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build"]
    (decorator,) = build.decorator_list
    config = {k.arg: k.value for k in decorator.keywords}["config"]
    assert isinstance(config, ast.Constant) and isinstance(config.value, str)
    assert methods.load_class(config.value).__name__ == "GMPOConfig"
    inside = [n.module for n in ast.walk(build) if isinstance(n, ast.ImportFrom)]
    assert inside == ["trl.experimental.gmpo"]
    # The first try is on the tiny model, for both examples.
    assert "model=tiny" in page_command("gmpo") and "model=tiny" in page_command("exo")


@pytest.mark.slow
def test_the_pages_examples_register_validate_and_train(tmp_path):
    """The page's blocks, written into a copy of the repository, and its two commands there, as one sweep
    (one start-up): each example's run is validated and trains, each in its own process as a user's runs
    are (eval and W&B off: the subject is the method's plumbing; test_smoke scores every shipped method)."""
    copy = tmp_path / "repo"
    for folder in ("bench", "methods", "conf"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for path, text in page_files().items():
        assert not (copy / path).exists(), f"{path} is shipped: the page's example must be a new file"
        (copy / path).write_text(text)
    exo, gmpo = page_command("exo"), page_command("gmpo")
    assert exo[1:] == gmpo[1:], (exo, gmpo)  # the same command but for the method
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "-m",
        "method=exo,gmpo",
        *gmpo[1:],
        "eval=none",
        "logger=none",
        f"hydra.sweep.dir={out}",
    ]
    proc = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=900)
    records = {r["method"]: r for r in (json.loads(p.read_text()) for p in out.glob("*/metrics.json"))}
    assert set(records) == {"exo", "gmpo"}, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, record in records.items():
        assert record["status"] == "success", f"{name}: {record.get('error')}\n{record.get('traceback', '')}"
        assert record["model"] == "tiny-llama" and record["train/steps"] > 0
    assert records["exo"]["method/adapter"] == "dpo" and records["gmpo"]["method/adapter"] == "gmpo"
    assert proc.returncode == 0, proc.stderr[-3000:]
    # What the newcomer sees: each run's start and end, the report, and where it is; no library's noise.
    terminal = proc.stdout + proc.stderr
    assert not [w for w in ("FutureWarning", "UserWarning", "DeprecationWarning", "gemm_4bit_forward") if w in terminal]
    assert proc.stdout.strip().splitlines()[-1].endswith(f"report: {out / 'summary.md'}")
