"""Command-line flags generated from a frozen-dataclass schema, so a stage's options are declared once.

``add_options(parser, Schema)`` adds ``--<field-name>`` for every field (types, choices and the help text from
the dataclass's ``Args:`` docstring); ``given(args, Schema)`` returns only the flags the user gave, so the
dataclass keeps being the one source of the defaults for the CLI, YAML and Python alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from typing import Any


def _docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the class docstring's ``Args:``/``Attributes:`` section (continuations joined)."""
    out: dict[str, str] = {}
    current = None
    for line in (cls.__doc__ or "").splitlines():
        m = re.match(r"^\s{4,8}(\w+):\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip() and line.startswith(" " * 12):
            out[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return out


def _plain(tp: Any) -> tuple[Any, bool]:
    """The flag's type with ``| None`` removed, and whether None was allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(tp))
    return tp, False


def add_options(parser: argparse.ArgumentParser, schema: type, skip: tuple[str, ...] = ()) -> None:
    """Add ``--<field>`` for each field of ``schema`` (``skip`` leaves some out); defaults stay ``None`` (not
    given), the dataclass supplies the real ones."""
    docs = _docs(schema)
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name in skip:
            continue
        tp, _ = _plain(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        text = docs.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{text} (default: {default})" if text else f"default: {default}"
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_text)
        elif typing.get_origin(tp) is typing.Literal:
            parser.add_argument(flag, dest=f.name, choices=typing.get_args(tp), help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=tp if tp in (int, float) else str, help=help_text)


def given(args: argparse.Namespace, schema: type) -> dict[str, Any]:
    """The ``schema`` options the user gave on the command line (flags left out are not in the dict)."""
    names = [f.name for f in dataclasses.fields(schema)]
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
