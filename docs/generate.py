"""Rewrite the generated tables of docs/methods.md and docs/metrics.md from the registries.

python docs/generate.py          # rewrite
python docs/generate.py --check  # exit 1 when a table is stale (the test suite runs this check)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def _fmt(v) -> str:
    if isinstance(v, tuple) and all(isinstance(e, float) for e in v):
        return "(" + ", ".join(f"{e:g}" for e in v) + ")"
    return repr(v) if isinstance(v, str) else str(v)


def methods_table() -> str:
    from bamkit.commands.methods import rows

    lines = ["| method | output | parameters (defaults) | paper |", "| --- | --- | --- | --- |"]
    for r in rows():
        params = ", ".join(f"`{k}={_fmt(v)}`" for k, v in r["defaults"].items()) or "—"
        lines.append(f"| `{r['name']}` | {r['output']} | {params} | {r['paper']} |")
    return "\n".join(lines)


def metrics_table() -> str:
    from bamkit.metrics.registry import METRICS

    way = {True: "higher", False: "lower", None: "read"}
    lines = [
        "| metric | scenario | better | saliency | settings (defaults) | computed by | source |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, cls in METRICS.items():
        d = cls.describe()
        params = ", ".join(f"`{k}={_fmt(v)}`" for k, v in d["params"].items()) or "—"
        fn = d["function"].removeprefix("bamkit.metrics.")
        lines.append(
            f"| `{d['name']}` | {d['scenario']} | {way[d['higher_is_better']]} | {d['saliency'] or '—'} | {params} "
            f"| `{fn}` | {d['paper'] or '—'} |"
        )
    return "\n".join(lines)


TABLES = {"methods.md": ("methods-table", methods_table), "metrics.md": ("metrics-table", metrics_table)}


def render(name: str) -> tuple[str, str]:
    """(current text, text with the table regenerated) of ``docs/<name>``."""
    marker, make = TABLES[name]
    text = (DOCS / name).read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- {marker} -->\n).*?(\n<!-- /{marker} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"docs/{name} has no <!-- {marker} --> block")
    return text, pattern.sub(lambda m: m.group(1) + make() + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when a generated table is stale")
    args = p.parse_args(argv)
    stale = []
    for name in TABLES:
        old, new = render(name)
        if old != new:
            stale.append(name)
            if not args.check:
                (DOCS / name).write_text(new, encoding="utf-8")
    if args.check and stale:
        print(
            f"stale generated tables in {', '.join('docs/' + s for s in stale)}; run python docs/generate.py"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
