"""Counting the source files a reader had to skip (docs/dataset.md#source-formats: real files occasionally fail to decode).

Bad inputs are *skipped and counted, never silently dropped*: every reader owns a :class:`SkipCounter`, and
the stage that drives it prints :meth:`SkipCounter.summary` at the end, so a user sees "skipped 3 source files:
2 truncated, 1 missing" instead of a data set that is quietly smaller than asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Reasons the readers use (free-form strings are allowed; these are the common ones).
MISSING = "missing"  # referenced by an index/annotation file but not on disk
UNREADABLE = "unreadable"  # not an image at all (PIL cannot identify it)
TRUNCATED = "truncated"  # an image whose data ends early
SMALL = "small"  # the object instance is below the requested minimum area
CROWD = "crowd"  # only crowd (iscrowd=1) annotations of the category in an image
SIZE_MISMATCH = "size_mismatch"  # the decoded image disagrees with the annotation file's width/height
EMPTY = "empty"  # the instance mask is empty inside its box


@dataclass
class SkipCounter:
    """Per-reason counts of skipped source items, with the first few details kept for the log.

    Attributes:
        counts: reason -> number of skipped items.
        examples: reason -> up to ``keep_examples`` details (file names, ids) for diagnostics.
        keep_examples: how many details to keep per reason (bounded memory on a 100k-image source).
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    keep_examples: int = 5

    @property
    def total(self) -> int:
        """The number of skipped items over all reasons."""
        return sum(self.counts.values())

    def add(self, reason: str, detail: str = "") -> None:
        """Count one skipped item under ``reason`` (``detail``: which file or id, for the log)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if detail:
            kept = self.examples.setdefault(reason, [])
            if len(kept) < self.keep_examples:
                kept.append(detail)
        log.debug("skipped (%s) %s", reason, detail)

    def merge(self, other: SkipCounter) -> None:
        """Add another counter's counts (e.g. from a worker process) into this one."""
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
        for reason, details in other.examples.items():
            kept = self.examples.setdefault(reason, [])
            kept.extend(details[: max(0, self.keep_examples - len(kept))])

    def summary(self) -> str:
        """One line such as ``"skipped 3 source files: 2 truncated, 1 missing"``; ``""`` when nothing was skipped.

        Reasons are listed most frequent first (ties by name) so the line is stable across runs.
        """
        if not self.total:
            return ""
        parts = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        noun = "source file" if self.total == 1 else "source files"
        return f"skipped {self.total} {noun}: " + ", ".join(f"{n} {reason}" for reason, n in parts)

    def __bool__(self) -> bool:
        return self.total > 0
