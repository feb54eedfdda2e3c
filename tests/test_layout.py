"""The layout is the architecture: bench/'s folders are its layers, and imports run one way."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_top_level_is_a_few_layers():
    entries = sorted(p.name for p in (REPO / "bench").iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries
    for folder in (p for p in (REPO / "bench").iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = folder / "__init__.py"
        assert init.is_file() and init.read_text().startswith('"""'), f"{folder.name}/ says what it holds"


def test_import_contracts_hold():
    """pyproject.toml's layers (studies > run > report > recipe > config > methods > tasks > measure >
    records > system; estimate sits between recipe and config), and no circles between siblings, as import-linter
    checks them."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency: make setup installs it"
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Layers run one way KEPT" in proc.stdout and "No import circles between siblings KEPT" in proc.stdout


def test_the_layout_page_names_every_folder():
    layout = (REPO / "docs" / "layout.md").read_text()
    for folder in (p for p in (REPO / "bench").iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert f"bench/{folder.name}/" in layout, folder.name


# Where the code's own words name a place: files and folders (`bench/recipe/pipeline.py`) and modules or
# their members (`bench.recipe.train`, a logger's name; `bench.config.history.HASH_NEUTRAL`).
NAMED_PATH = re.compile(r"(?<![\w/.])((?:bench|methods|conf|scripts|tests)/[\w./*{}<>-]*[\w*}>])")
NAMED_MODULE = re.compile(r"(?<![\w./])((?:bench|methods)(?:\.[A-Za-z_]\w*)+)")


def prose(path: Path) -> str:
    """What a file says in words: a Python file's comments and strings (its code is checked by importing
    it), any other file whole."""
    if path.suffix != ".py":
        return path.read_text()
    kinds = (
        tokenize.COMMENT,
        tokenize.STRING,
        *(getattr(tokenize, k) for k in ("FSTRING_MIDDLE",) if hasattr(tokenize, k)),
    )
    with path.open("rb") as f:
        return "\n".join(t.string for t in tokenize.tokenize(f.readline) if t.type in kinds)


def _module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def dead_names(text: str) -> list[str]:
    """The paths and dotted module names in `text` that name nothing in this repository."""
    dead = [p for p in NAMED_PATH.findall(text) if not any(c in p for c in "*{<") and not (REPO / p).exists()]
    for dotted in NAMED_MODULE.findall(text):
        parts = dotted.split(".")
        found = next((i for i in range(len(parts), 0, -1) if _module_file(parts[:i])), None)
        if found is None:
            dead.append(dotted)
        elif found < len(parts):  # a member: defined, assigned or imported at the module's top level
            member, source = parts[found], _module_file(parts[:found]).read_text()
            if not re.search(
                rf"^(?:(?:async )?def|class) {member}\b|^{member}\s*[:=]|^(?:from|import) .*\b{member}\b",
                source,
                flags=re.M,
            ):
                dead.append(dotted)
    return dead


def test_the_code_names_only_files_and_modules_that_exist():
    """A file that moved leaves its old name in comments, messages and YAML (a model card that cited
    bench/pipeline.py, a logger called bench.train): every path and module the harness, the adapters,
    the configs and the scripts name in words must exist."""
    files = [
        p
        for top in ("bench", "methods", "conf", "scripts")
        for p in (REPO / top).rglob("*")
        if p.suffix in (".py", ".yaml", ".sh") and "__pycache__" not in p.parts
    ]
    dead = {str(p.relative_to(REPO)): names for p in [*files, REPO / "Makefile"] if (names := dead_names(prose(p)))}
    assert not dead, dead


def test_dead_names_are_found():
    assert dead_names("see bench/pipeline.py and bench.train; bench/recipe/pipeline.py, bench.recipe.train") == [
        "bench/pipeline.py",
        "bench.train",
    ]
    assert dead_names("bench.config.history.HASH_NEUTRAL, bench.config.history._OFF, bench/x/*.py") == [
        "bench.config.history._OFF"
    ]


def _writers_of_the_record() -> set[str]:
    """Every function in bench/ that calls `store.write` on a run's metrics.json (METRICS or the name)."""
    import ast

    found = set()
    for path in (REPO / "bench").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
                name = ast.unparse(call.func)
                target = ast.unparse(call.args[0]) if call.args else ""
                if name.endswith("store.write") and ("METRICS" in target or "metrics.json" in target):
                    found.add(f"{path.relative_to(REPO)}::{func.name}")
    return found


def test_the_run_package_orchestrates_in_one_module_and_writes_its_record_in_one_function():
    """bench/run/runner.py orchestrates (resume, the run process and the record are modules of their own),
    and one function writes metrics.json, so every way a run ends is recorded the same way."""
    assert len((REPO / "bench" / "run" / "runner.py").read_text().splitlines()) < 200
    assert _writers_of_the_record() == {"bench/run/record.py::write"}
