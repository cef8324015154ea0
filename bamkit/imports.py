"""Naming your own code in a config or on the command line: ``package.module:name`` (an importable module) or
``./path/to/file.py:name`` (a file), for attribution methods, networks, scene detectors and suite plug-ins."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from bamkit.errors import ConfigError


def load_file(path: Path, where: str) -> ModuleType:
    """The module of a ``.py`` file, loaded once per (file, content): an edited file is loaded afresh, even in the
    same process."""
    if not path.is_file():
        raise ConfigError(f"{where}: {str(path)!r} is not a file; give the path of a .py file")
    digest = hashlib.sha256(str(path.resolve()).encode() + path.read_bytes()).hexdigest()[:12]
    name = f"bamkit_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ConfigError(f"{where}: importing {str(path)!r} failed: {type(e).__name__}: {e}") from e
    return module


def import_object(spec: str, where: str, base: Path | None = None) -> Any:
    """The object ``spec`` names: ``package.module:name`` or ``./file.py:name`` (a file relative to ``base``, else
    to the current folder; ``name`` may be dotted). A module that cannot be found is one line naming ``where`` and
    where Python looks."""
    mod, _, attr = spec.rpartition(":")
    if not mod or not attr:
        raise ConfigError(f"{where}: {spec!r} is not 'package.module:name' or './file.py:name'")
    if mod.endswith(".py") or "/" in mod or "\\" in mod:
        path = Path(mod).expanduser()
        obj: Any = load_file(path if path.is_absolute() or base is None else base / path, where)
    else:
        try:
            obj = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            raise ConfigError(
                f"{where}: cannot import {mod!r} ({e}); the module must be importable: run from the folder that "
                f"holds it, add that folder to PYTHONPATH, or name the file: ./path/to/{mod.split('.')[-1]}.py:{attr}"
            ) from None
        except Exception as e:  # the module raised while importing: its own message (with -v, its traceback)
            raise ConfigError(f"{where}: importing {mod!r} failed: {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: {mod!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj
