"""Typed configs: a frozen dataclass is the schema, a YAML file is one instance of it.

``from_dict`` validates recursively: unknown keys, missing required keys and values of the wrong type are
:class:`~bamkit.errors.ConfigError` naming the dotted key path and the file, before any expensive work starts.
Field-level checks beyond types live in each dataclass's ``__post_init__`` (raise ``ConfigError``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bamkit.errors import ConfigError

C = TypeVar("C")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a parse error or a non-mapping is a one-line ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist; pass the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start}); pass a YAML file"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"cannot parse {str(p)!r}{where}: {getattr(e, 'problem', e)}; fix the YAML syntax"
        ) from None
    if data is None:  # an empty file silently meaning "all defaults" hid wrong paths and truncated copies
        raise ConfigError(
            f"{str(p)!r} is empty; write its settings (the shipped configs show them), or '{{}}' to take every "
            "default on purpose"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{str(p)!r} must hold a YAML mapping (key: value), got {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` against annotation ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {_type_name(tp)}"
        )
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        elem = args[0] if args else Any
        out = [convert(v, elem, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {convert(k, kt, where): convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value


def check_choices(obj: Any, where: str) -> None:
    """Every ``Literal`` field of dataclass ``obj`` holds one of its choices (for objects built in Python rather
    than read by :func:`from_dict`, which checks them already); ``where`` prefixes the message."""
    for name, tp in typing.get_type_hints(type(obj)).items():
        choices = _literal_args(tp)
        value = getattr(obj, name, None)
        if choices and value not in choices and not (value is None and type(None) in typing.get_args(tp)):
            raise ConfigError(f"{where} {name}={value!r} is not one of {', '.join(map(repr, choices))}")


def _literal_args(tp: Any) -> tuple[Any, ...]:
    """The choices of a ``Literal`` type (or ``Literal | None``); () for anything that admits other values."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(tp) if a is not type(None)]
        if all(typing.get_origin(a) is typing.Literal for a in parts):
            return tuple(c for a in parts for c in typing.get_args(a))
    return ()


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys are errors that suggest the closest field name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
        raise ConfigError(f"{where}: unknown key {k!r}{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name in data:
            kwargs[name] = convert(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML-able data (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    """Deterministic YAML text of a config (sorted keys off: the dataclass order is the documented order)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=False, allow_unicode=True)


def load(cls: type[C], path: str | Path) -> C:
    """Load and validate a YAML file as dataclass ``cls``; errors name the file."""
    return from_dict(cls, load_yaml(path), where=str(path))


# --------------------------------------------------------------------------------------------- --set KEY=VALUE
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[str, Any]:
    """``"trainer.max_epochs=3"`` -> ``("trainer.max_epochs", 3)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not KEY=VALUE; write e.g. --set trainer.max_epochs=3")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: cannot read the value as YAML; quote it") from None
    if isinstance(parsed, str) and _FLOAT.fullmatch(parsed.strip()):
        parsed = float(parsed)  # YAML 1.1 reads "1e-4" (no dot) as a string
    return key, parsed


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | Sequence[str]) -> dict:
    """Set dotted keys in a nested mapping (validation happens when the dataclass is built)."""
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    out = copy.deepcopy(data)
    for key, value in items:
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
            node = nxt
        node[leaf] = value
    return out


def overridden(
    data: dict[str, Any], overrides: Sequence[str], build: Callable[[dict, str], C], where: str
) -> C:
    """``build(data, where)`` with the command line's ``--set KEY=VALUE`` values applied, the one way every verb
    that reads a config takes overrides. An error names its source: the file (``where``) for the file's own
    values, the ``--set`` value for a bad override."""
    if not overrides:
        return build(data, where)
    build(data, where)  # the file's own values first, so their errors name the file
    try:
        return build(apply_overrides(data, overrides), "--set")
    except ConfigError as e:
        given = " ".join(f"--set {o}" for o in overrides)
        raise ConfigError(
            f"{str(e).replace('--set.', '--set ', 1)} (given on the command line: {given})"
        ) from None
