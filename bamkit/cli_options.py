"""The command line's one way to override settings: ``--set KEY=VALUE`` (repeatable, dotted keys, values read
as YAML), validated by the schema of the config the verb reads, with the same messages as the file's own
values and the flag named when the bad value came from it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TypeVar

from bamkit.config import apply_overrides, from_dict, to_dict
from bamkit.errors import ConfigError

C = TypeVar("C")


def add_set(parser: argparse.ArgumentParser, what: str, example: str, schema: type | None = None) -> None:
    """Add ``--set KEY=VALUE`` overriding keys of ``what``; with ``schema``, the keys and their defaults are
    listed at the end of ``--help``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a key of {what} (repeatable; dotted keys, values as YAML), e.g. --set {example}",
    )
    if schema is not None:
        keys = ", ".join(f"{k}={v}" for k, v in to_dict(schema()).items())
        parser.epilog = f"--set keys (defaults): {keys}"


# What a method named on the command line can be (read by bamkit.evaluate.methods.MethodSpec.parse): the one
# description behind evaluate's and run's --method and score's METHOD.
METHOD_METAVAR = "[LABEL=]NAME"
METHOD_FORMS = (
    "a registered method (bamkit methods), package.module:callable, ./file.py:callable or a captum class "
    "(captum.attr:Saliency), or a quoted YAML mapping '{name: ..., param: ...}'; LABEL= names its rows"
)


def add_methods(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--method`` (repeatable): an extra method ``what`` scores beside the suite's."""
    parser.add_argument(
        "--method",
        action="append",
        default=[],
        metavar=METHOD_METAVAR,
        help=f"an extra method {what} beside the suite's (repeatable): {METHOD_FORMS}",
    )


def add_recompute(parser: argparse.ArgumentParser) -> None:
    """Add ``--recompute LABEL`` (repeatable): that method's cached maps are computed again."""
    parser.add_argument(
        "--recompute",
        action="append",
        default=[],
        metavar="LABEL",
        help="compute this method's maps again, ignoring its cached ones (repeatable)",
    )


def schema_from_set(schema: type[C], overrides: Sequence[str], base: dict[str, Any] | None = None) -> C:
    """``schema`` built from ``base`` with the ``--set`` values applied; an error names the flag."""
    try:
        return from_dict(schema, apply_overrides(dict(base or {}), overrides), "--set")
    except ConfigError as e:
        given = " ".join(f"--set {o}" for o in overrides)
        raise ConfigError(
            f"{str(e).replace('--set.', '--set ', 1)} (given on the command line: {given})"
        ) from None


def verbosity() -> argparse.ArgumentParser:
    """``-v`` after the subcommand too (``bamkit evaluate suite.yaml -v``): counted with the one before it."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0, help=argparse.SUPPRESS)
    return p
