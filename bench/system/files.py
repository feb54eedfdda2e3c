"""Reading the files users and caches give the harness: any decoding or parsing error names the file,
the line and how to fix it, as a BenchError (a one-paragraph message, before any expensive work).

Python's own errors name neither: `UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in
position 3503` says where in bytes, and `json.loads(text)` has no file. These wrappers turn the byte
offset into a line and column and put the path in front, the way a compiler reports a source error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import BenchError

UTF8_FIX = "save it as UTF-8 (for a Latin-1 file: `iconv -f latin1 -t utf-8 in > out`) or remove that byte"


def read_text(path: Path, fix: str = "") -> str:
    """The file as UTF-8 text; an undecodable byte is reported as path:line:column."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise BenchError(
            f"{path}:{line}:{column}: byte 0x{data[err.start]:02x} is not UTF-8 ({err.reason}); {UTF8_FIX}."
            + (f" {fix}" if fix else "")
        ) from err


def read_json(path: Path, fix: str = "") -> Any:  # JSON's shape is the caller's to know, as json.loads's
    """A JSON file; a syntax error is reported as path:line:column with JSON's own reason."""
    path = Path(path)
    text = read_text(path, fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BenchError(
            f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg})." + (f" {fix}" if fix else "")
        ) from err


def iter_jsonl(path: Path, fix: str = "fix or remove that row") -> Iterator[tuple[dict, str]]:
    """(row, "path:line") for each non-blank line of a JSON Lines file."""
    path = Path(path)
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line), f"{path}:{lineno}"
        except json.JSONDecodeError as err:
            raise BenchError(f"{path}:{lineno}:{err.colno}: not valid JSON ({err.msg}); {fix}.") from err


def read_yaml(path: Path, fix: str = ""):
    """A YAML file as an OmegaConf container; a syntax error is reported as path:line:column."""
    import yaml
    from omegaconf import OmegaConf

    path = Path(path)
    text = read_text(path, fix)
    try:
        return OmegaConf.create(text or "{}")  # OmegaConf's YAML loader: 1e-4 is a float, as in OmegaConf.load
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = getattr(err, "problem", None) or str(err)
        raise BenchError(f"{where}: not valid YAML ({reason})." + (f" {fix}" if fix else "")) from err
