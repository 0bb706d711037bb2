from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiki.errors import PageError
from wiki.markers import content_hash, is_marker_line
from wiki.page import PageDoc, Region, Text, parse_page, render_page, split_lines

PAGE = """---
# a comment a person wrote, kept as is
title: Kubernetes
type: systems
aliases: [k8s]
lore:
  entity: 42
  revision: 7
---
Intro a person wrote.

<!-- lore:summary h={summary_hash} -->
# Kubernetes

The cluster.[^c1]
<!-- /lore:summary -->

Between regions.
<!-- lore:facts h={facts_hash} -->
- Runs on EKS [^c1]
<!-- /lore:facts -->
Trailing text without a final newline"""


def _page() -> str:
    return PAGE.format(
        summary_hash=content_hash("# Kubernetes\n\nThe cluster.[^c1]\n"),
        facts_hash=content_hash("- Runs on EKS [^c1]\n"),
    )


def test_well_formed_page_parses_into_parts_and_renders_byte_identical() -> None:
    text = _page()
    doc = parse_page(text)
    assert doc.problems == []
    assert doc.meta["title"] == "Kubernetes"
    assert doc.meta["lore"] == {"entity": 42, "revision": 7}
    assert [type(p).__name__ for p in doc.parts] == ["Text", "Region", "Text", "Region", "Text"]
    assert [r.name for r in doc.regions] == ["summary", "facts"]
    assert doc.region("facts") is not None
    assert doc.region("facts").content == "- Runs on EKS [^c1]\n"
    assert not any(r.edited for r in doc.regions)
    assert doc.human_text() == "Intro a person wrote.\n\n\nBetween regions.\nTrailing text without a final newline"
    assert render_page(doc) == text


def test_changed_meta_is_written_again_and_untouched_meta_keeps_its_formatting() -> None:
    doc = parse_page(_page())
    assert render_page(doc).startswith("---\n# a comment a person wrote")
    doc.meta["revision"] = 8
    out = render_page(doc)
    assert "# a comment" not in out
    assert parse_page(out).meta["revision"] == 8
    assert out.endswith(render_page(PageDoc(parts=doc.parts)))


def test_front_matter_with_shared_values_and_awkward_characters_reads_back() -> None:
    shared = ["k8s"]
    doc = PageDoc(meta={"aliases": shared, "also": shared, "odd": "a\x85b\u2028", "title": "Köln"})
    text = render_page(doc)
    assert "&id" not in text
    assert "Köln" in text
    again = parse_page(text)
    assert again.problems == []
    assert again.meta == doc.meta


def test_edit_inside_a_region_is_detected_and_line_endings_are_not_an_edit() -> None:
    text = _page()
    edited = parse_page(text.replace("- Runs on EKS", "- Runs on EKS, mostly"))
    assert edited.region("facts").edited
    assert not edited.region("summary").edited
    crlf = parse_page(text.replace("\n", "\r\n"))
    assert render_page(crlf) == text.replace("\n", "\r\n")
    assert crlf.problems == []
    assert not any(r.edited for r in crlf.regions)
    unhashed = parse_page("<!-- lore:notes -->\nsomething\n<!-- /lore:notes -->\n")
    assert unhashed.region("notes").edited
    empty = parse_page("<!-- lore:notes -->\n<!-- /lore:notes -->\n")
    assert not empty.region("notes").edited


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("a\n<!-- lore:facts -->\nnever closed\n", "unclosed-region"),
        ("<!-- lore:a -->\n<!-- lore:b -->\nx\n<!-- /lore:b -->\n<!-- /lore:a -->\n", "nested-region"),
        ("<!-- lore:a -->\nx\n<!-- /lore:b -->\n", "mismatched-close"),
        ("text\n<!-- /lore:facts -->\n", "stray-close"),
        ("<!-- lore:a -->\n<!-- /lore:a -->\n<!-- lore:a -->\nmine\n<!-- /lore:a -->\n", "duplicate-region"),
        ("---\ntitle: [unclosed\n---\nbody\n", "bad-front-matter"),
        ("---\n- a list\n---\nbody\n", "bad-front-matter"),
        ("---\nbase: &a [1, 2]\ncopy: *a\n---\nbody\n", "bad-front-matter"),
        ("---\ntitle: no end\nbody\n", "unclosed-front-matter"),
    ],
)
def test_malformed_input_is_kept_as_text_and_reported(text: str, kind: str) -> None:
    doc = parse_page(text)
    assert kind in [p.kind for p in doc.problems]
    assert render_page(doc) == text
    for line in doc.problems:
        assert 1 <= line.line <= len(split_lines(text))


def test_nested_markers_keep_the_inner_region() -> None:
    doc = parse_page("<!-- lore:a -->\n<!-- lore:b -->\nx\n<!-- /lore:b -->\n<!-- /lore:a -->\n")
    assert [r.name for r in doc.regions] == ["b"]
    assert "<!-- lore:a -->" in doc.human_text()
    assert "<!-- /lore:a -->" in doc.human_text()


def test_markers_count_only_as_whole_lines() -> None:
    doc = parse_page("  <!-- lore:a -->\nx\n<!-- /lore:a --> \ntext <!-- lore:b -->\n")
    assert doc.regions == []
    assert doc.problems == []


@pytest.mark.parametrize(
    "region",
    [
        Region("facts", "no newline at the end"),
        Region("facts", "<!-- /lore:facts -->\n"),
        Region("Bad Name", "x\n"),
        Region("facts", "x\n", hash="nothex!!"),
    ],
)
def test_render_refuses_documents_that_would_not_read_back(region: Region) -> None:
    with pytest.raises(PageError):
        render_page(PageDoc(parts=[region]))


def test_render_refuses_a_region_glued_to_the_previous_line() -> None:
    with pytest.raises(PageError, match="new line"):
        render_page(PageDoc(parts=[Text("no newline"), Region.machine("facts", "x")]))
    with pytest.raises(PageError, match="final line ending"):
        render_page(PageDoc(parts=[Region("facts", "", close_eol=""), Text("glued")]))
    assert (
        render_page(PageDoc(parts=[Text("a"), Text("b\n"), Region("n", "")]))
        == "ab\n<!-- lore:n -->\n<!-- /lore:n -->\n"
    )


# --- properties ------------------------------------------------------------------------------------

TRICKY = st.sampled_from(
    [
        "<!-- lore:facts -->\n",
        "<!-- lore:facts h=00000000 -->\n",
        "<!-- /lore:facts -->\n",
        "<!-- lore:summary -->\n",
        "<!-- /lore:summary -->",
        "---\n",
        "title: x\n",
        "\r\n",
        "\n",
        "\x0c\x85\u2028",
        "```\n",
        "[^c1]: quote\n",
    ]
)
ANY_TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=20)), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_parse_then_render_is_byte_identical_for_any_text(text: str) -> None:
    assert render_page(parse_page(text)) == text


NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
LINE = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=30)
CONTENT = st.lists(LINE, max_size=5).map(lambda lines: "".join(f"{line}\n" for line in lines))
HUMAN = st.one_of(CONTENT, ANY_TEXT).filter(
    lambda t: not any(is_marker_line(line) for line in split_lines(t)) and not t.startswith("---")
)
SCALAR = st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none())
META = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True),
    st.one_of(SCALAR, st.lists(SCALAR, max_size=3), st.dictionaries(st.sampled_from(["entity", "rev"]), SCALAR)),
    max_size=5,
)


@st.composite
def documents(draw: st.DrawFn) -> PageDoc:
    names = draw(st.lists(NAMES, unique=True, max_size=4))
    parts: list[Text | Region] = []
    for name in names:
        human = draw(HUMAN)
        if human:
            parts.append(Text(human if human.endswith("\n") else human + "\n"))
        content = draw(CONTENT.filter(lambda c: not any(is_marker_line(x) for x in split_lines(c))))
        hash_ = draw(st.sampled_from(["fresh", "none", "stale"]))
        value = {"fresh": content_hash(content), "none": None, "stale": "0badf00d"}[hash_]
        parts.append(Region(name, content, value))
    tail = draw(HUMAN)
    if tail:
        parts.append(Text(tail))
    return PageDoc(meta=draw(META), parts=parts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(documents())
def test_render_parse_render_is_stable_and_keeps_structure(doc: PageDoc) -> None:
    text = render_page(doc)
    again = parse_page(text)
    assert render_page(again) == text
    assert again.problems == []
    assert again.meta == doc.meta
    assert [(r.name, r.content, r.hash) for r in again.regions] == [(r.name, r.content, r.hash) for r in doc.regions]
    assert again.human_text() == doc.human_text()
    assert [r.edited for r in again.regions] == [r.edited for r in doc.regions]
