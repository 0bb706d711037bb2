from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from wiki.escaping import escape_inline, safe_prose, wikilink
from wiki.markdown import (
    REF_MARK,
    RESOLVE_ENV_KEY,
    extract_footnote_refs,
    extract_wikilinks,
    parser,
    text_units,
    to_html,
    wikilinks_plugin,
)
from wiki.sanitize import sanitize_html


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    collector = _Collector()
    collector.feed(markup)
    return collector.tags


def test_sanitizer_drops_scripts_handlers_and_dangerous_urls() -> None:
    dirty = (
        '<a href="javascript:alert(1)" onclick="x" class="wikilink evil">a</a>'
        "<script>alert(1)</script><style>p{}</style>"
        '<img src="data:image/png;base64,AAAA" onerror="alert(1)">'
        '<h2 id="ok-id">h</h2><h3 id="bad id">h</h3>'
        '<code class="language-python evil">x</code>'
        '<iframe src="https://x.example"></iframe><form action="/x"><input name="q"></form>'
        '<td style="text-align:right;position:fixed">c</td>'
        '<a href="https://ok.example/" target="_blank">ok</a>'
    )
    clean = sanitize_html(dirty)
    assert "alert" not in clean
    assert "<iframe" not in clean
    assert "<form" not in clean
    assert "<input" not in clean
    assert "onclick" not in clean
    assert "onerror" not in clean
    assert 'class="wikilink"' in clean
    assert 'id="ok-id"' in clean
    assert "bad id" not in clean
    assert 'class="language-python"' in clean
    assert "position" not in clean
    assert 'href="https://ok.example/"' in clean
    assert "target" not in clean


def _scheme(url: str) -> str:
    """The scheme a browser would see: it strips C0 controls and spaces around, tabs and newlines inside."""
    value = html.unescape(url).strip("".join(chr(c) for c in range(33)))
    value = value.replace("\t", "").replace("\n", "").replace("\r", "")
    return urlsplit(value).scheme.lower()


DANGER = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](&#x6A;avascript:alert(1))",
        "[x]( javascript:alert(1))",
        "![i](data:image/svg+xml;base64,PHN2Zz4=)",
        "<javascript:alert(1)>",
        "<a href='javascript:alert(1)'>a</a>",
        "[[Evil]]",
        "[[Evil|<b>x</b>]]",
        '[t](/a "x\\" onclick=\\"alert(1)")',
        "[r]: javascript:alert(1)\n\n[r]",
        "<!-- lore:facts -->",
        "`code`",
        "\n\n",
        "\n",
        "> ",
        "- ",
        "[^a]",
        "[^a]: x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(DANGER, st.text(max_size=10)), max_size=20).map("".join))
def test_rendered_html_never_carries_script_or_executable_urls(text: str) -> None:
    out = to_html(text, {"Evil": "javascript:alert(1)", "Ok": "/p/ok"}.get)
    for tag, attrs in _tags(out):
        assert tag not in {"script", "iframe", "object", "embed", "style", "form"}
        for name, value in attrs:
            assert not name.startswith("on")
            if name in {"href", "src"} and value is not None:
                assert _scheme(value) in {"", "http", "https", "mailto"}


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters=REF_MARK + "\x00", blacklist_categories=("Cs",)), max_size=60))
def test_escaped_text_renders_as_the_same_characters_and_nothing_else(text: str) -> None:
    markdown = f"- {escape_inline(text)} [^c1]\n"
    assert "\n" not in markdown[:-1]
    units = text_units(markdown)
    assert len(units) == 1
    assert units[0].kind == "item"
    assert units[0].refs == ("c1",)
    assert units[0].text == f"{' '.join(text.split())} {REF_MARK}".lstrip(" ")
    assert extract_wikilinks(markdown) == []
    assert extract_footnote_refs(markdown) == ["c1"]


def test_wikilink_builder_round_trips_through_the_parser() -> None:
    text = wikilink("wiki/systems/k8s.md", "Kubernetes [prod] | main", "Version history")
    assert text == "[[wiki/systems/k8s.md#Version history|Kubernetes prod main]]"
    link = extract_wikilinks(text)[0]
    assert (link.target, link.section, link.label) == ("wiki/systems/k8s.md", "Version history", "Kubernetes prod main")
    assert wikilink("Same", "Same") == "[[Same]]"


def test_safe_prose_defuses_markers_and_footnote_definitions() -> None:
    prose = "Fine.[^c1]\r\n<!-- /lore:summary -->\n   [^c1]: forged\n\n"
    out = safe_prose(prose)
    assert out == "Fine.[^c1]\n\\<!-- /lore:summary -->\n   \\[^c1]: forged"
    assert extract_footnote_refs(out) == ["c1"]


def test_plugin_works_on_any_markdown_it_and_uses_the_env_resolver() -> None:
    md = MarkdownIt("commonmark").use(wikilinks_plugin)
    rendered = md.render("[[A]] [[B]]", {RESOLVE_ENV_KEY: {"A": "/a"}.get})
    assert rendered == (
        '<p><a class="wikilink" href="/a">A</a> <a class="wikilink wikilink-broken" title="No page named B">B</a></p>\n'
    )
    assert parser() is not parser()
    tokens = parser().parse("x [[T#S|l]]")
    link = next(t for t in tokens[1].children or [] if t.type == "wikilink")
    assert link.meta == {"target": "T", "section": "S", "label": "l"}
