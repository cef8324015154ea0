"""Where bamkit finds its shipped configs (``data_recipes/``, ``train/``, ``evaluate/``, ``pipelines/``).

They live at the top of the source checkout, beside the package (torchvision keeps its ``references/`` the
same way). ``BAMKIT_CONFIG_ROOT`` points elsewhere, e.g. at a copy of those folders next to a wheel install.
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
    candidates.append(Path(__file__).resolve().parents[1])
    for c in candidates:
        if all((c / f).is_dir() for f in _FOLDERS):
            return c
    raise ConfigError(
        f"cannot find bamkit's config folders ({', '.join(_FOLDERS)}) in {', '.join(map(str, candidates))}; "
        "run from a source checkout (pip install -e .) or set BAMKIT_CONFIG_ROOT to a folder that holds them"
    )


def shipped(relpath: str | Path) -> Path:
    """A shipped config such as ``data_recipes/demo.yaml``; an absolute or existing path is returned as is."""
    p = Path(relpath)
    if p.is_absolute() or p.exists():
        return p
    return config_root() / p
