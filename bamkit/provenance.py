"""Provenance records (config, seed, versions) and content hashes that decide whether a stage is current."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import bamkit

_PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "numpy",
    "h5py",
    "pycocotools",
    "albumentations",
    "scipy",
    "captum",
    "zennit",
)


def versions() -> dict[str, str]:
    """Versions of Python, bamkit and the libraries whose behaviour shapes the outputs."""
    out = {"python": platform.python_version(), "bamkit": bamkit.__version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def file_hash(path: str | Path, algo: str = "sha256", chunk: int = 1 << 22) -> str:
    """Streaming content hash of a file (bounded memory whatever its size)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_hash(obj: Any) -> str:
    """Hash of JSON-able data with sorted keys: equal configs give equal hashes whatever their key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record(config: Any = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance dict stored beside/inside every output."""
    rec: dict[str, Any] = {"versions": versions(), "argv": list(sys.argv)}
    if config is not None:
        rec["config"] = config
    if seed is not None:
        rec["seed"] = int(seed)
    rec.update(extra)
    return rec


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (suite seed, set, row, ...): the same in every process, shard and run."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1
