"""Stage stamps: a stage is current when its stamp's key equals the key of its inputs and its outputs exist.

A key is a hash of the stage's own resolved config and the keys of the stages it reads from, so changing one
method in the evaluation suite re-runs only evaluate and report, while a new dataset seed re-runs everything
downstream of the build. Hashing keys instead of multi-gigabyte outputs keeps the check instant.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bamkit import atomic
from bamkit.provenance import json_hash


@dataclass(frozen=True)
class Stamp:
    stage: str
    key: str
    outputs: tuple[str, ...]
    seconds: float
    finished: float
    info: dict[str, Any]


def stage_key(stage: str, config: Any, upstream: dict[str, str]) -> str:
    """The key of ``stage`` for this config and these upstream keys."""
    return json_hash({"stage": stage, "config": config, "upstream": dict(sorted(upstream.items()))})


def stamp_path(out: Path, stage: str) -> Path:
    return out / ".stamps" / f"{stage}.json"


def read(out: Path, stage: str) -> Stamp | None:
    p = stamp_path(out, stage)
    try:
        d = json.loads(p.read_text())
        return Stamp(
            d["stage"],
            d["key"],
            tuple(d["outputs"]),
            float(d["seconds"]),
            float(d["finished"]),
            d.get("info", {}),
        )
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return None


def is_current(out: Path, stage: str, key: str) -> bool:
    """True when the stamp matches ``key`` and every recorded output still exists."""
    s = read(out, stage)
    return s is not None and s.key == key and all((out / o).exists() for o in s.outputs)


def write(out: Path, stage: str, key: str, outputs: list[str], seconds: float, info: dict[str, Any]) -> None:
    rec = {
        "stage": stage,
        "key": key,
        "outputs": outputs,
        "seconds": round(seconds, 3),
        "finished": time.time(),
        "info": info,
    }
    atomic.write_text(stamp_path(out, stage), json.dumps(rec, indent=2, default=str))
