"""Markdown behaviour as data: every ``input . expected .`` block of tests/wiki/fixtures/*.md.

``extract.md`` checks what ``extract_wikilinks`` / ``extract_footnote_refs`` / ``extract_footnote_defs`` read;
every other file checks ``to_html`` with a fixed resolver.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it.utils import read_fixture_file

from wiki.markdown import extract_footnote_defs, extract_footnote_refs, extract_wikilinks, to_html

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = {
    "Kubernetes": "/pages/wiki/systems/kubernetes.md",
    "Apache Kafka": "/pages/wiki/systems/apache-kafka.md",
    "Evil": "javascript:alert(1)",
    "Data": "data:text/html,<script>alert(1)</script>",
}


def _extracted(text: str) -> str:
    out = [f"link {x.target!r} label={x.label!r} section={x.section!r}" for x in extract_wikilinks(text)]
    out += [f"ref {label}" for label in extract_footnote_refs(text)]
    out += [f"def {d.label} links={[x.target for x in d.links]!r}" for d in extract_footnote_defs(text)]
    return "\n".join(out) + "\n"


def _cases() -> list[object]:
    cases = []
    for path in sorted(FIXTURES.glob("*.md")):
        for line, title, source, expected in read_fixture_file(path):
            cases.append(pytest.param(path.stem, source, expected, id=f"{path.stem}:{line}:{title[:40]}"))
    return cases


@pytest.mark.parametrize(("kind", "source", "expected"), _cases())
def test_fixture(kind: str, source: str, expected: str) -> None:
    actual = _extracted(source) if kind == "extract" else to_html(source, PAGES.get)
    assert actual == expected


def test_fixture_files_are_found() -> None:
    assert len(_cases()) >= 25
