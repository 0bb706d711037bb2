"""The server-rendered web UI, and hostile page content rendering inert (checked on the HTML)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from tests.api.wiki_builder import WikiFixture

HOSTILE = "wiki/concepts/hostile-page.md"
K8S = "wiki/systems/kubernetes.md"


#: The one script a UI page may load: the app's own file, no inline body (CSP ``script-src 'self'``).
UI_SCRIPT = {"src": "/static/lore.js", "defer": None}
#: The forms the UI itself renders (search; login, logout, upload, retract and resolve for a login).
UI_FORM = re.compile(r"^/ui/(search|login|logout|upload|sources/[^/]+/retract|contradictions/\d+/resolve)$")


class Audit(HTMLParser):
    """Collects everything in an HTML document that could run script, but the UI's own script tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.scripts = 0  # the UI's own <script src="/static/lore.js"> tags
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and dict(attrs) == UI_SCRIPT and not self._in_script:
            self.scripts += 1
            self._in_script = True
        elif tag in ("script", "iframe", "object", "embed", "frame", "base", "form") and not (
            tag == "form" and UI_FORM.match(dict(attrs).get("action") or "")
        ):
            self.findings.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on"):
                self.findings.append(f"{tag} {name}=")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value.startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.findings.append(f"{tag} {name}={value[:30]}")
            if name == "style":
                self.findings.append(f"{tag} style=")
            if tag == "a" and name == "href":
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.findings.append("inline script in the UI's script tag")
        self.text.append(data)


def audit(html: str) -> Audit:
    parser = Audit()
    parser.feed(html)
    return parser


def test_catalog_lists_pages_by_type_with_search_box(client: TestClient) -> None:
    r = client.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    a = audit(r.text)
    assert a.findings == []
    assert "/ui/pages/wiki/systems/kubernetes.md" in a.links
    assert "/ui/pages/wiki/sources/platform-adr-7.md" in a.links
    assert 'action="/ui/search"' in r.text
    assert "Systems" in r.text
    assert "Services" in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui"


def test_page_view_links_footnotes_conflicts(client: TestClient) -> None:
    html = client.get(f"/ui/pages/{K8S}").text
    a = audit(html)
    assert a.findings == []
    assert "/ui/pages/wiki/services/payments-api.md" in a.links  # [[Payments API]] resolved
    assert "/ui/pages/wiki/sources/platform-adr-7.md" in a.links  # the footnote's source link
    assert 'id="fn1"' in html
    assert 'href="#fn1"' in html
    # the citations panel shows each quote with a link to its source
    assert 'id="cite-c0k8s129aaaa"' in html
    assert "Kubernetes version 1.28 runs the payments cluster" in html
    assert 'class="conflicts"' in html
    assert "Conflicting sources" in html
    assert f"/ui/history/{K8S}" in a.links


def test_history_diff_sources_and_contradictions_pages(client: TestClient, wiki_fx: WikiFixture) -> None:
    history = client.get(f"/ui/history/{K8S}").text
    assert wiki_fx.commits[1][:12] in history
    assert "Lore-Source" in history
    diff_link = f"/ui/diff/{K8S}?a={wiki_fx.commits[0]}&b={wiki_fx.commits[1]}"
    assert diff_link in audit(history).links
    diff = client.get(diff_link).text
    assert 'class="dadd"' in diff
    assert "[[Payments API]]" in diff
    sources = client.get("/ui/sources").text
    assert "Platform ADR 7" in sources
    assert "Hostile &lt;b&gt;sample&lt;/b&gt;" in sources
    detail = client.get(f"/ui/sources/{wiki_fx.source_ids['adr']}").text
    assert "Pages touched" in detail
    assert "/ui/pages/wiki/services/payments-api.md" in audit(detail).links
    conflicts = client.get("/ui/contradictions").text
    assert "Kubernetes version 1.29" in conflicts
    assert "Kubernetes version 1.28" in conflicts
    missing = client.get("/ui/pages/wiki/systems/nope.md")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "NotFound" in missing.text


def test_search_page_says_which_tier_answered(client: TestClient) -> None:
    html = client.get("/ui/search", params={"q": "who owns the payments service?"}).text
    assert "tier 1" in html
    assert "Payments API" in html
    assert "/ui/pages/wiki/sources/platform-adr-7.md" in audit(html).links
    empty = client.get("/ui/search").text
    assert "Ask a question" in empty


@pytest.mark.parametrize(
    "url",
    [
        f"/ui/pages/{HOSTILE}",
        f"/pages/{HOSTILE}?format=html",
        "/ui/sources",
        "/ui/search?q=%3Cscript%3Ealert(1)%3C/script%3E%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
        "/ui/pages/wiki/sources/hostile-sample.md",
    ],
)
def test_hostile_content_renders_inert(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 200
    a = audit(r.text)
    assert a.findings == [], a.findings
    lowered = r.text.lower()
    ui_page = url.startswith("/ui")
    assert a.scripts == (1 if ui_page else 0)  # the UI's own file only; the API's HTML has none
    assert lowered.count("<script") == a.scripts
    assert "javascript:" not in " ".join(a.links)


def test_hostile_page_keeps_its_text_visible(client: TestClient) -> None:
    html = client.get(f"/ui/pages/{HOSTILE}").text
    text = "".join(audit(html).text)
    assert "<script>window.__xss = 1; alert(1)</script>" in text  # shown as text, not run
    assert "/ui/pages/wiki/systems/kubernetes.md" in audit(html).links
    assert 'class="wikilink wikilink-broken"' in html  # [[No Such Page]] and the javascript: target
