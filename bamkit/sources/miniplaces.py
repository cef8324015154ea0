"""Scene images from MiniPlaces or a folder-per-class tree (BAM §3.1; docs/dataset.md#classes-and-sources).

Two layouts are recognised automatically:

* **official MiniPlaces** (CSAILVision/miniplaces): ``categories.txt`` (lines ``/b/bamboo_forest 12``),
  ``train.txt`` (``train/b/bamboo_forest/00000001.jpg 12``), ``val.txt`` (``val/00000001.jpg 12``) next to
  ``images/`` (or in ``data/``, as in the development kit); names may be nested (``track/outdoor``);
* **plain folders** (Places365-standard style): ``root/<name>/*.jpg``, nested names allowed
  (``root/track/outdoor/*.jpg``), optionally below a ``root/<split>/`` folder and optionally with the
  Places ``/<letter>/`` level (``root/t/track/outdoor/*.jpg``), which is dropped from the name.

Files that are listed but missing, truncated or not images are skipped by :meth:`MiniPlaces.load` and counted.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from bamkit.errors import DataError
from bamkit.sources.decode import read_rgb
from bamkit.sources.skips import SkipCounter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLITS = ("train", "val")


def _strip_letter(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Drop the Places ``<first letter>/`` level: ``("t", "track", "outdoor")`` -> ``("track", "outdoor")``."""
    if len(parts) >= 2 and len(parts[0]) == 1 and parts[1][:1].lower() == parts[0].lower():
        return parts[1:]
    return parts


def _category_name(token: str) -> str:
    """``/t/track/outdoor`` or ``t/track/outdoor`` or ``track/outdoor`` -> ``track/outdoor``."""
    return "/".join(_strip_letter(tuple(p for p in token.split("/") if p)))


def _find_index_dir(root: Path) -> Path | None:
    for d in (root, root / "data"):
        if (d / "categories.txt").is_file():
            return d
    return None


def _scan_class_folders(base: Path) -> dict[str, list[Path]]:
    """Every folder below ``base`` that directly holds images is a class named by its relative path."""
    found: dict[str, list[Path]] = {}
    for f in sorted(base.rglob("*")):
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            rel = f.parent.relative_to(base).parts
            if not rel:
                continue  # images directly in base belong to no class
            found.setdefault("/".join(_strip_letter(rel)), []).append(f)
    return found


class MiniPlaces:
    """Reader of scene images by class name.

    Args:
        root: the MiniPlaces folder (official layout) or a folder-per-class tree.
        split: ``"train"`` or ``"val"`` (official layout; a plain tree uses ``root/<split>/`` when it exists).

    Raises:
        DataError: ``root`` is missing or in neither layout, ``split`` is unknown, or an index file is
            malformed.

    Attributes:
        layout: ``"miniplaces"`` or ``"folders"``.
        indices: official category index per name (``{"bamboo_forest": 12, ...}``); empty for plain folders.
        skips: files :meth:`load` could not use, by reason.
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DataError(f"MiniPlaces: split={split!r}; expected one of {list(SPLITS)}")
        self.split = split
        if not self.root.is_dir():
            raise DataError(
                f"MiniPlaces: no folder {self.root}; expected the MiniPlaces root (categories.txt, train.txt, "
                "images/train/...) or a folder per scene class (pass --miniplaces, or `bamkit sources synth`)"
            )
        self.skips = SkipCounter()
        self.indices: dict[str, int] = {}
        index_dir = _find_index_dir(self.root)
        if index_dir is not None:
            self.layout = "miniplaces"
            self._files = self._read_official(index_dir)
        else:
            self.layout = "folders"
            base = self.root / split if (self.root / split).is_dir() else self.root
            self._files = _scan_class_folders(base)
            if not self._files:
                raise DataError(
                    f"MiniPlaces: {self.root} has neither categories.txt (official MiniPlaces layout: "
                    "categories.txt, train.txt, val.txt, images/train/<letter>/<name>/*.jpg) nor class folders "
                    f"with images (root/<name>/*.jpg); found no {'/'.join(IMAGE_SUFFIXES)} files"
                )

    # -- official layout -------------------------------------------------------------------------------
    def _read_official(self, index_dir: Path) -> dict[str, list[Path]]:
        categories = index_dir / "categories.txt"
        by_index: dict[int, str] = {}
        for lineno, line in enumerate(categories.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            token, idx = self._split_line(categories, lineno, line)
            name = _category_name(token)
            self.indices[name] = idx
            by_index[idx] = name
        images = self.root / "images" if (self.root / "images").is_dir() else index_dir / "images"
        listing = index_dir / f"{self.split}.txt"
        files: dict[str, list[Path]] = {name: [] for name in self.indices}
        if listing.is_file():
            for lineno, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                rel, idx = self._split_line(listing, lineno, line)
                if idx not in by_index:
                    raise DataError(
                        f"MiniPlaces {listing}:{lineno}: label {idx} is not in categories.txt "
                        f"(indices {min(by_index)}..{max(by_index)}); the index files do not match"
                    )
                files[by_index[idx]].append(images / rel)
        elif self.split == "train" and (images / "train").is_dir():
            # No train.txt: the folder tree itself says which class each image is.
            for name, paths in _scan_class_folders(images / "train").items():
                files.setdefault(name, []).extend(paths)
        else:
            raise DataError(
                f"MiniPlaces: no {listing.name} in {index_dir}; expected lines such as "
                f"'{self.split}/b/bamboo_forest/00000001.jpg 12' (val: 'val/00000001.jpg 12')"
            )
        return {name: sorted(paths) for name, paths in files.items()}

    @staticmethod
    def _split_line(path: Path, lineno: int, line: str) -> tuple[str, int]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(
                f"MiniPlaces {path}:{lineno}: {line.strip()!r}; expected '<name or path> <integer index>'"
            )
        return parts[0], int(parts[1])

    # -- public API --------------------------------------------------------------------------------------
    def scene_names(self) -> list[str]:
        """Class names, sorted (``"bamboo_forest"``, ..., ``"track/outdoor"``)."""
        return sorted(self._files)

    def _lookup(self, name: str) -> str:
        if name in self._files:
            return name
        normalised = _category_name(name)  # accept "/b/bamboo_forest" as written in categories.txt
        if normalised in self._files:
            return normalised
        names = self.scene_names()
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        close += [
            n for n in names if n.split("/")[0] == name and n not in close
        ]  # "track" -> "track/outdoor"
        rest = [n for n in names if n not in close]
        hint = f"did you mean {' or '.join(repr(n) for n in close)}? " if close else ""
        raise DataError(
            f"MiniPlaces: no scene class {name!r} in {self.root} ({self.layout} layout, split {self.split}); "
            f"{hint}available: {', '.join(close + rest)}"
        )

    def files(self, name: str) -> list[Path]:
        """The image paths of class ``name``, sorted (BAM pastes the i-th object into the i-th scene).

        Raises:
            DataError: unknown class; the message lists the available ones, close matches first.
        """
        return list(self._files[self._lookup(name)])

    def index(self, name: str) -> int | None:
        """The official MiniPlaces index of ``name`` (``None`` for plain folders)."""
        return self.indices.get(self._lookup(name))

    def load(self, path: str | Path) -> np.ndarray | None:
        """Decode one image as ``(H, W, 3)`` uint8 RGB; ``None`` (counted in :attr:`skips`) when it is bad."""
        rgb, reason = read_rgb(path)
        if rgb is None:
            self.skips.add(reason, str(path))
        return rgb
