"""The dataset file plus optional extra files (``bamkit delta --out``'s patch file), read as one."""

from __future__ import annotations

from pathlib import Path

from bamkit.data.h5 import BamFile
from bamkit.provenance import json_hash


class DataSets:
    """The dataset file plus optional extra files (``bamkit delta``'s patch file): a set is read from the first
    file that has it. Each set also gets a content token for cache keys, so a rebuilt set (new recipe, new δ)
    never reuses maps of the old one.
    """

    def __init__(self, path: str | Path, extra: tuple[str | Path, ...] = ()) -> None:
        self.files = [BamFile(path), *(BamFile(p) for p in extra if p is not None and Path(p).is_file())]
        self._tokens: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return any(f.has(name) for f in self.files)

    def _file(self, name: str):
        for f in self.files:
            if f.has(name):
                return f
        return self.files[0]  # raises the dataset file's own "set not found" error

    def __getitem__(self, name: str):
        return self._file(name)[name]

    def token(self, name: str) -> str:
        """``<set>@<hash of the file's and set's attributes and length>``."""
        if name not in self._tokens:
            f = self._file(name)
            view = f[name]
            fa = {
                k: v
                for k, v in f.attrs.items()
                if k in ("recipe", "seed", "schema_version", "object_classes", "scene_classes", "image_size")
            }
            self._tokens[name] = f"{name}@{json_hash([fa, view.attrs, len(view)])[:12]}"
        return self._tokens[name]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> DataSets:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
