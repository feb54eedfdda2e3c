"""One registry pattern for every extension point (methods, tasks): a decorator fills it, importing
the package's modules discovers the entries, and an unknown name fails with "did you mean".

Modelled on lm-evaluation-harness's `Registry` (lm_eval/api/registry.py): duplicates are rejected
rather than silently replaced, so two files can never fight over one name.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, discovered by importing every module of `package`."""

    def __init__(self, kind: str, package: str, skip: tuple[str, ...] = ()):
        self.kind, self.package, self.skip = kind, package, skip
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._discovered = False

    def add(self, name: str, entry: T, origin: str) -> None:
        if name in self._entries and self._origin[name] != origin:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._origin[name]}, {origin})")
        self._entries[name], self._origin[name] = entry, origin

    def decorator(self, name: str, make: Callable[[Callable], T]) -> Callable[[Callable], Callable]:
        """`@registry.decorator(name, make)`: registers `make(fn)` under `name` and returns `fn`."""

        def wrap(fn: Callable) -> Callable:
            self.add(name, make(fn), fn.__module__)
            return fn

        return wrap

    def _discover(self) -> None:
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in self.skip and not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        self._discovered = True

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._entries:
            raise KeyError(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        folder = self.package.replace(".", "/")
        return f"No {self.kind} {name!r} in {folder}/; registered: {', '.join(sorted(self._entries))}.{hint}"
