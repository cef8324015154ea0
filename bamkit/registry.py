"""A small name -> object registry (after torchvision ``models/_api.py`` and timm ``_registry.py``).

``register(name)`` rejects duplicates, ``get(name)`` suggests close names for unknown ones, ``names()`` lists.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bamkit.errors import BamkitError

T = TypeVar("T")


class UnknownNameError(BamkitError, KeyError):
    """An unknown registry name (a ``KeyError`` too, so dict-like callers can catch it)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want the sentence as is
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named objects of one kind (attribution methods, metrics, ...).

    Args:
        kind: what is registered, used in messages ("attribution", "metric").
        list_command: the CLI command that lists every name, quoted in errors.
    """

    def __init__(self, kind: str, list_command: str = "") -> None:
        self.kind = kind
        self.list_command = list_command
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name``; a second object under the same name is an error."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._items, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        lister = (
            f" ({self.list_command} lists all)"
            if self.list_command
            else f" (known: {', '.join(sorted(self._items))})"
        )
        return f"unknown {self.kind} {name!r}{hint}{lister}"

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, object) sorted by name (listings)."""
        return iter(sorted(self._items.items()))

    def registered(self) -> list[tuple[str, T]]:
        """(name, object) in registration order (the order tables and reports follow)."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
