"""Report documents: a self-contained HTML page (inline CSS, base64-embedded PNGs, no script, no network),
the same content as Markdown with PNG files beside it, and the tables as CSV.

A document is a list of blocks (heading, paragraph, table, figure) rendered by both writers, so the HTML and
the Markdown never drift apart.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em;border-bottom:2px solid #3b6ea5}h2{font-size:1.25em;margin-top:2em;color:#2b4f77}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccd;padding:3px 8px;text-align:right}th{background:#eef2f7}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:.6em;
overflow-x:auto;font-size:.8em}.banner{background:#fff3cd;border:1px solid #e0b04c;padding:.6em .9em;
margin:.8em 0;font-weight:600}nav.toc{font-size:.9em;border:1px solid #ccd;padding:.4em 1em;margin:1em 0}
nav.toc ul{margin:.2em 0;padding-left:1.2em}
"""


@dataclass
class Doc:
    """Blocks of a report: ("h", level, text), ("p", text), ("table", caption, header, rows), ("fig", name, png,
    caption), ("pre", text); banners (warnings a reader must see first: a failed premise, a finding that does
    not reproduce) are shown at the top of the page, under the title, before the table of contents."""

    title: str
    blocks: list[tuple] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)

    def banner(self, text: str) -> None:
        self.banners.append(text)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, caption: str, header: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", caption, header, rows))

    def fig(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append(("fig", name, png, caption))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def figures(self) -> list[tuple[str, bytes]]:
        return [(b[1], b[2]) for b in self.blocks if b[0] == "fig"]


_WHOLE = {
    "n",
    "rank",
    "n_pairs",
    "n_images",
    "n_undefined",
    "excluded: δ failed",
    "#",
}  # columns of counts and ranks


def cell(header: Any, v: Any) -> str:
    """A table cell: counts and ranks as integers (pandas stores them as floats beside NaN)."""
    if str(header) in _WHOLE and isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return fmt(v)


def fmt(v: Any, digits: int = 3) -> str:
    """Numbers to short text; NaN/None as an en dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}f}"
    return str(v)


def to_html(doc: Doc) -> str:
    """The page: one file, every image a data URI, no external reference of any kind."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
        *(f'<div class="banner">⚠ {e(t)}</div>' for t in doc.banners),
        _toc(doc),
    ]
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out.append(f'<h{b[1] + 1} id="{e(_anchor(b[2]))}">{e(b[2])}</h{b[1] + 1}>')
        elif kind == "p":
            out.append(f'<p class="note">{e(b[1])}</p>')
        elif kind == "pre":
            out.append(f"<pre>{e(b[1])}</pre>")
        elif kind == "table":
            _, caption, header, rows = b
            out.append("<table>")
            if caption:
                out.append(f"<caption>{e(caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{e(cell(h, c))}</td>" for h, c in zip(header, r)) + "</tr>")
            out.append("</table>")
        elif kind == "fig":
            _, name, png, caption = b
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out)


def to_markdown(doc: Doc, figure_dir: str = "figures") -> str:
    """Markdown with the figures as ``figure_dir/<name>.png`` files (the caller writes them)."""
    out = [f"# {doc.title}", "", *(f"> **⚠ {t}**\n" for t in doc.banners)]
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out += ["#" * (b[1] + 1) + " " + b[2], ""]
        elif kind == "p":
            out += [b[1], ""]
        elif kind == "pre":
            out += ["```", b[1], "```", ""]
        elif kind == "table":
            _, caption, header, rows = b
            if caption:
                out += [f"*{caption}*", ""]
            out.append("| " + " | ".join(str(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += [
                "| " + " | ".join(cell(h, c).replace("|", "\\|") for h, c in zip(header, r)) + " |"
                for r in rows
            ]
            out.append("")
        elif kind == "fig":
            _, name, _, caption = b
            out += [f"![{caption}]({figure_dir}/{name}.png)", "", f"*{caption}*", ""]
    return "\n".join(out)


def _toc(doc: Doc) -> str:
    """The table of contents: every heading, nested by level (the page is long)."""
    e = html.escape
    items = [(b[1], b[2]) for b in doc.blocks if b[0] == "h"]
    if len(items) < 3:
        return ""
    out, depth = ['<nav class="toc"><b>Contents</b>'], 0
    for level, text in items:
        while depth < level:
            out.append("<ul>")
            depth += 1
        while depth > level:
            out.append("</ul>")
            depth -= 1
        out.append(f'<li><a href="#{e(_anchor(text))}">{e(text)}</a></li>')
    out += ["</ul>"] * depth + ["</nav>"]
    return "".join(out)


def _anchor(text: str) -> str:
    return "".join(c.lower() if c.isalnum() else "-" for c in text).strip("-")
