"""The project documents itself: the generated tables of docs/ list what the registries hold, and every
reference to docs/ (from code, configs, the README or the docs themselves) names a file and a heading that
exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = re.compile(r"docs/([\w/.-]+\.md)(?:#([\w-]+))?")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(encoding="utf-8"), re.M)}


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.split() if p.endswith((".py", ".md", ".yaml", ".sh"))]


def test_generated_tables_are_current():
    r = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_reference_to_docs_resolves():
    bad = []
    for path in _tracked():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in REF.finditer(text):
            target = ROOT / "docs" / m.group(1)
            if not target.is_file():
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)} (no such file)")
            elif m.group(2) and m.group(2) not in _anchors(target):
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)} (no such heading)")
    assert bad == []


@pytest.mark.parametrize(
    "page", sorted((ROOT / "docs").rglob("*.md")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_links_between_docs_resolve(page):
    for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[\w-]+)?\)", page.read_text(encoding="utf-8")):
        assert (page.parent / target).is_file(), f"{page.relative_to(ROOT)} links to missing {target}"
