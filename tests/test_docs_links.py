"""Every relative link in the README and docs/ leads somewhere: the file exists, and an anchor
(``file.md#section``) names one of that file's headings as GitHub slugs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # code is not a link
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: (not checked: no network here)
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_slugs_are_githubs():
    assert slug("Labels on imagery afss did not render (SPARK-2021)") == "labels-on-imagery-afss-did-not-render-spark-2021"
    assert slug("`afss run`: one command") == "afss-run-one-command"


def test_the_design_doc_names_every_part_of_the_package_and_nothing_that_is_gone():
    """docs/design.md shows the layout that is there: each top-level module and package of afss/ is
    named in it, and every afss/... path it names exists."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    package = ROOT / "afss"
    parts = {p.name for p in package.iterdir() if (p.is_dir() and not p.name.startswith("__")) or
             (p.suffix == ".py" and p.name != "__init__.py")}
    unnamed = sorted(n for n in parts if f"afss/{n}" not in text)
    assert not unnamed, f"docs/design.md does not name {unnamed}"
    named = set(re.findall(r"afss/[\w./]+\w", text))
    gone = sorted(p for p in named if not (ROOT / p).exists())
    assert not gone, f"docs/design.md names paths that do not exist: {gone}"


def test_the_readme_stays_short():
    """A newcomer reads it in five minutes; lab notes go to docs/ (docs/benchmarks.md)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 220, f"README.md has {lines} lines; move detail to docs/"
