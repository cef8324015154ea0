"""What the report reads from a results folder: ``summary.json`` and the per-image / per-pair tables beside
it, checked before any page is written (an unreadable or foreign file is one line naming it, never a report with
figures silently left out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bamkit.errors import DataError
from bamkit.evaluate.pairs import COLUMNS as PAIR_COLUMNS
from bamkit.evaluate.runner import PER_IMAGE_KEYS


def load_summary(results: Path) -> dict[str, Any]:
    p = results / "summary.json"
    if not p.is_file():
        raise DataError(
            f"{str(results)!r} has no summary.json; run 'bamkit evaluate' into it first (or, after "
            "'--shard i/n' runs, finish every shard)"
        )
    try:
        s = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"{str(p)!r} is not valid JSON ({e}); it is truncated or was edited — re-run 'bamkit evaluate' "
            "into that folder (the cached maps make it quick)"
        ) from None
    missing = [k for k in ("suite", "summary") if not isinstance(s, dict) or k not in s]
    if missing:
        raise DataError(
            f"{str(p)!r} is not a bamkit summary (no {', '.join(missing)}); point 'bamkit report' at the "
            "folder 'bamkit evaluate' wrote"
        )
    _check_tables(results)
    return s


# The columns every per-image / per-pair table of the evaluate stage has, as the evaluate stage declares them.
_TABLE_COLUMNS = {"per_image.csv": PER_IMAGE_KEYS, "per_pair.csv": tuple(PAIR_COLUMNS)}


def _check_tables(results: Path) -> None:
    """The results tables the report reads beside summary.json are bamkit's: an unreadable or foreign file is
    an error naming it, never a report with figures silently left out."""
    import pandas as pd

    for name, cols in _TABLE_COLUMNS.items():
        p = results / name
        if not p.is_file():
            continue
        try:
            head = pd.read_csv(p, nrows=5)
        except (ValueError, OSError, UnicodeDecodeError) as e:
            raise DataError(
                f"{str(p)!r} cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); re-run "
                f"'bamkit evaluate' into {str(results)!r} to rewrite it"
            ) from None
        gone = [c for c in cols if c not in head.columns]
        if gone:
            raise DataError(
                f"{str(p)!r} is not a bamkit results table (no column {', '.join(gone)}); re-run "
                f"'bamkit evaluate' into {str(results)!r} to rewrite it"
            )
