"""Report sections that a study adds: a study registers a function that, given one of the report's
folders, returns its section's markdown (or None when the folder is not that study's). The report finds
them through the registry, so the harness never imports a study by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bench.system.registry import Registry

Section = Callable[[Path], "str | None"]
SECTIONS: Registry[Section] = Registry("report section", "bench.studies")


def register_section(name: str) -> Callable[[Section], Section]:
    """`@register_section("tuning")` on `fn(folder) -> markdown | None`."""
    return SECTIONS.decorator(name, lambda fn: fn)


def sections(folders: Sequence[Path | str]) -> list[str]:
    """Every registered section that applies to one of `folders`, in name order, then folder order."""
    found = []
    for name in SECTIONS.names():
        found += [text for text in (SECTIONS.get(name)(Path(f)) for f in folders) if text]
    return found
