"""List the registered attribution methods with their hyper-parameters, defaults and papers."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON instead of a table")


def _fmt(v: Any) -> str:
    if v is inspect.Parameter.empty:
        return "<required>"
    if isinstance(v, tuple) and all(isinstance(e, float) for e in v):
        return "(" + ",".join(f"{e:g}" for e in v) + ")"
    return repr(v) if isinstance(v, str) else str(v)


def _json(v: Any) -> Any:
    """JSON-native defaults (numbers, strings, lists, null); anything else as its text."""
    if v is inspect.Parameter.empty:
        return "<required>"
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (tuple, list)) and all(isinstance(e, (bool, int, float, str)) for e in v):
        return list(v)
    return _fmt(v)


def rows() -> list[dict[str, Any]]:
    """One dict per registered method: name, output kind, defaults, paper."""
    import bamkit.attribution as A

    out = []
    for name in A.names():
        cls = A.get(name)
        defaults = {k: v for k, v in A.defaults(name).items() if k not in ("mean", "std")}
        out.append(
            {
                "name": name,
                "output": getattr(cls, "output", "input"),
                "stochastic": bool(getattr(cls, "stochastic", False)),
                "defaults": defaults,
                "paper": getattr(cls, "paper", ""),
            }
        )
    return out


def run(args: argparse.Namespace) -> int:
    table = rows()
    if getattr(args, "json", False):
        print(
            json.dumps(
                [{**r, "defaults": {k: _json(v) for k, v in r["defaults"].items()}} for r in table], indent=2
            )
        )
        return 0
    width = max(len(r["name"]) for r in table) if table else 4
    print(f"{'method':<{width}}  {'output':<7} defaults  [paper]")
    for r in table:
        d = ", ".join(f"{k}={_fmt(v)}" for k, v in r["defaults"].items()) or "-"
        print(f"{r['name']:<{width}}  {r['output']:<7} {d}")
        if r["paper"]:
            print(f"{'':<{width}}  {'':<7} [{r['paper']}]")
    print(
        "\nAll methods also take the model's input normalisation as mean=/std= (default ImageNet) where "
        "it matters; execution options (precision, channels_last, compile, fold_bn, batch_size) go in ExecOptions."
    )
    return 0
