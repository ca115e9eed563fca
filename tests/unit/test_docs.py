"""The documentation's links cannot rot: README.md, docs/ and examples/ are checked on every test run.

- every relative link points at a file or folder that exists in the repository;
- every ``#anchor`` (in the page itself or in another Markdown page) names a heading that exists there, by
  GitHub's slug rule (lowercase, punctuation dropped, spaces to ``-``, ``-1``, ``-2`` for repeats);
- every page in docs/ opens with a table of contents: before its first ``##`` heading, a link to each of them;
- README.md stays at 10 KB or less.

Markdown is parsed with markdown-it-py (CommonMark), so a link inside a code block is not a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT_BYTES = 10 * 1024
_MARKDOWN = MarkdownIt("commonmark").enable("table")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")  # http:, https:, mailto:, protocol-relative


def pages() -> list[Path]:
    found = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").rglob("*.md")]
    return sorted(path for path in found if path.is_file())


def docs_pages() -> list[Path]:
    return sorted((ROOT / "docs").rglob("*.md"))


def _tokens(path: Path) -> list[Token]:
    return _MARKDOWN.parse(path.read_text(encoding="utf-8"))


def _walk(tokens: Iterable[Token]) -> Iterable[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lowercase, drop what is not a letter, digit, ``_``, ``-`` or space."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _plain(inline: Token) -> str:
    """A heading's text as rendered: the text of its children without the Markdown around it."""
    return "".join(child.content for child in inline.children or () if child.type in ("text", "code_inline"))


def headings(tokens: list[Token]) -> list[tuple[str, str]]:
    """(tag, anchor) of each heading, in order, with GitHub's ``-1``, ``-2`` suffixes for repeated anchors."""
    seen: dict[str, int] = {}
    found = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            base = slug(_plain(tokens[i + 1]))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.append((token.tag, base if count == 0 else f"{base}-{count}"))
    return found


@cache
def anchors(path: Path) -> frozenset[str]:
    return frozenset(anchor for _, anchor in headings(_tokens(path)))


def links(tokens: list[Token]) -> list[str]:
    return [str(t.attrs["href"]) for t in _walk(tokens) if t.type == "link_open" and "href" in t.attrs]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of ``path`` that names no file, or an anchor no heading has, with the reason."""
    problems = []
    for href in links(_tokens(path)):
        if _SCHEME.match(href):
            continue
        target_text, _, fragment = href.partition("#")
        target = (path.parent / unquote(target_text)).resolve() if target_text else path
        if root not in (target, *target.parents):
            problems.append(f"{href}: points outside the repository")
        elif not target.exists():
            problems.append(f"{href}: no such file {target.relative_to(root)}")
        elif fragment and target.suffix == ".md" and unquote(fragment) not in anchors(target):
            problems.append(f"{href}: no heading with anchor #{fragment} in {target.relative_to(root)}")
    return problems


def missing_from_contents(path: Path) -> list[str]:
    """The ``##`` headings the page's table of contents (its in-page links before the first ``##``) leaves out."""
    tokens = _tokens(path)
    first = next((i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"), len(tokens))
    listed = {href[1:] for href in links(tokens[:first]) if href.startswith("#")}
    sections = [anchor for tag, anchor in headings(tokens) if tag == "h2"]
    if not sections:
        return ["the page has no ## sections to list"]
    return [f"#{anchor}" for anchor in sections if anchor not in listed]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", docs_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_docs_page_opens_with_a_table_of_contents(page: Path) -> None:
    assert missing_from_contents(page) == []


def test_readme_is_at_most_10_kb() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_docs_exist_and_are_found() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in pages()}
    assert {"README.md", "docs/architecture.md", "examples/README.md"} <= found


def test_the_checks_catch_a_broken_link_a_broken_anchor_and_a_missing_contents_entry(tmp_path: Path) -> None:
    # Given a page with one good link and anchor, a link to a missing file and an anchor no heading has
    (tmp_path / "other.md").write_text("# Other\n\n## The `ffe` command — in full\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n- [Here](#here)\n\n## Here\n\n## Not listed\n\n"
        "[ok](other.md#the-ffe-command--in-full) [gone](missing.md) [bad](other.md#nowhere) [web](https://x.y/z)\n\n"
        "```\n[in code](nowhere.md)\n```\n",
        encoding="utf-8",
    )

    # When both checks read it
    problems = broken_links(page, root=tmp_path)
    missing = missing_from_contents(page)

    # Then exactly the two broken links and the unlisted section are reported
    assert problems == [
        "missing.md: no such file missing.md",
        "other.md#nowhere: no heading with anchor #nowhere in other.md",
    ]
    assert missing == ["#not-listed"]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("ffe — Finance Feedback Engine, serverless edition", "ffe--finance-feedback-engine-serverless-edition"),
        ("How ffe.local fits the stack into moto", "how-ffelocal-fits-the-stack-into-moto"),
        ("Models: promote and roll back", "models-promote-and-roll-back"),
        ("verb_noun handlers", "verb_noun-handlers"),
    ],
)
def test_slugs_follow_githubs_rule(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
