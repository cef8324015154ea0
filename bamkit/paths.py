"""Where bamkit finds its shipped configs (``data_recipes/``, ``train/``, ``evaluate/``, ``pipelines/``).

They live at the top of the source checkout, beside the package (torchvision keeps its ``references/`` the
same way); a wheel carries a copy as ``bamkit/_configs`` (setup.py copies them at build time, so the checkout's
folders stay the one source). ``BAMKIT_CONFIG_ROOT`` points elsewhere, e.g. at a copy made with
``bamkit configs copy DIR`` and edited.
"""

from __future__ import annotations

import os
from pathlib import Path

from bamkit.errors import ConfigError

_FOLDERS = ("data_recipes", "train", "evaluate", "pipelines")


def config_root() -> Path:
    """The folder holding ``data_recipes/``, ``train/`` and ``evaluate/``."""
    env = os.environ.get("BAMKIT_CONFIG_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1])  # a source checkout (pip install -e .)
    candidates.append(Path(__file__).resolve().parent / "_configs")  # an installed wheel
    for c in candidates:
        if all((c / f).is_dir() for f in _FOLDERS):
            return c
    raise ConfigError(
        f"cannot find bamkit's config folders ({', '.join(_FOLDERS)}) in {', '.join(map(str, candidates))}; "
        "reinstall bamkit, or set BAMKIT_CONFIG_ROOT to a folder that holds them (bamkit configs copy DIR)"
    )


def shipped(relpath: str | Path) -> Path:
    """A shipped config such as ``data_recipes/demo.yaml``; an absolute or existing path is returned as is."""
    p = Path(relpath)
    if p.is_absolute() or p.exists():
        return p
    return config_root() / p


def copy_configs(dest: str | Path) -> list[Path]:
    """Copy the shipped config folders into ``dest`` (created); existing files are never overwritten.

    Raises:
        ConfigError: a file of the copy already exists in ``dest`` (nothing is copied then).
    """
    import shutil

    root, dest = config_root(), Path(dest)
    files = [p for f in _FOLDERS for p in sorted((root / f).rglob("*.yaml"))]
    clash = [str(dest / p.relative_to(root)) for p in files if (dest / p.relative_to(root)).exists()]
    if clash:
        raise ConfigError(
            f"{len(clash)} config file(s) already exist in {str(dest)!r} (e.g. {clash[0]}); "
            "copy into an empty folder, or move those files away"
        )
    out = []
    for p in files:
        target = dest / p.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
        out.append(target)
    return out
