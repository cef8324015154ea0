"""bamkit's own exceptions: user errors that the CLI reports as one line and a non-zero exit.

Anything that is *not* a :class:`BamkitError` is a bug and keeps its traceback.
"""

from __future__ import annotations


class BamkitError(Exception):
    """A user-facing error: say the operation, what was received, what was expected, and how to fix it."""

    exit_code = 2


class ConfigError(BamkitError, ValueError):
    """A recipe/suite/training config is invalid (unknown key, impossible value)."""


class DataError(BamkitError):
    """An input file or folder is missing, corrupt or not in the expected format."""


class NotBuiltError(BamkitError):
    """A stage that is not built yet."""

    exit_code = 3


class CheckFailed(BamkitError):
    """An invariant or expected ordering failed (``bamkit inspect``, ``bamkit verify``)."""

    exit_code = 1
