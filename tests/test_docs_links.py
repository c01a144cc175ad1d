"""Every relative link in the user docs points at a file that exists (and at a heading it has), so moving a
page or renaming a section cannot silently break a link; repository paths quoted in code spans exist too."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "benchmarks").rglob("*.md"),
     *(ROOT / "src" / "irconstyle" / "weights").glob("*.md")]
)
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", flags=re.MULTILINE)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_REPO_PATH = re.compile(r"(?:docs|benchmarks|scripts|configs|src|tests)/[\w./-]+\.(?:md|py|yaml|sh|png|json)")


def prose(text: str) -> str:
    """The page without its fenced code blocks (what they hold is code, not links)."""
    return _FENCE.sub("", text)


def links(text: str) -> list[str]:
    """The targets of the inline and reference-style links and images in a page's prose."""
    body = prose(text)
    return _LINK.findall(body) + _REFERENCE.findall(body)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors a page defines: one per heading (repeats numbered as GitHub numbers them), explicit ids."""
    text = prose(page.read_text(encoding="utf-8"))
    found: set[str] = set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file, or whose heading in that file, does not exist."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):  # https:, mailto:, …
            continue
        path_part, _, anchor = target.partition("#")
        linked = page if not path_part else (page.parent / path_part).resolve()
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: {linked.name} has no heading with anchor #{anchor}")
    return problems


def missing_paths(page: Path) -> list[str]:
    """Repository files named in the page's code spans (``docs/….md``, ``scripts/….py``, …) that do not exist."""
    named = {match for span in _CODE_SPAN.findall(prose(page.read_text(encoding="utf-8")))
             for match in _REPO_PATH.findall(span)}
    return sorted(path for path in named if not (ROOT / path).exists())


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_repository_path_in_code_exists(page):
    assert missing_paths(page) == []


def test_the_checks_catch_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A `code` heading, with punctuation!\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-code-heading-with-punctuation) [ok](other.md#twice-1) [ok](#here) [web](https://x.org/y)\n"
        "# Here\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) ![picture](gone.png)\n"
        "```\n[in code](not-a-link.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nowhere: other.md has no heading with anchor #nowhere",
        "gone.png: no such file",
    ]


def test_the_checks_catch_a_missing_repository_path(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `python scripts/no_such_script.py` after `scripts/demo.sh`; see `docs/nowhere.md`.\n")
    assert missing_paths(page) == ["docs/nowhere.md", "scripts/no_such_script.py"]
