"""The web UI in Debian's headless Chromium (Playwright), served by uvicorn on loopback.

A person's path: search, open the page that answers, follow a wikilink, open a footnote and see the
citation's quote and its source. And the hostile page: nothing it contains runs (no dialog, no global
set by injected script), whatever its markdown held.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from tests.api.conftest import deps_for, serve
from tests.api.wiki_builder import WikiFixture

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        from tests.services import apt_install

        apt_install("chromium")
    return "/usr/bin/chromium"


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            context.close()


def test_search_open_page_follow_wikilink_see_citation(
    browser_page: Any, fresh_wiki: WikiFixture, artifacts_dir: Path
) -> None:
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with serve(create_app(deps_for(fresh_wiki))) as port:
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/ui")
        assert page.title() == "Lore · Lore"
        assert page.locator("a", has_text="Kubernetes").count() >= 1

        page.fill("input[name=q]", "who owns the payments service?")
        page.click("form.search button")
        page.wait_for_url("**/ui/search?q=*")
        assert "the page of Payments API" in page.inner_text("p.answered-by")

        page.click("ol.hits h2 a")
        page.wait_for_url("**/ui/pages/wiki/services/payments-api.md")
        assert page.inner_text("article.page-body h1") == "Payments API"

        page.click("article.page-body a.wikilink:text('Core team')")
        page.wait_for_url("**/ui/pages/wiki/teams/core-team.md")
        assert page.inner_text("article.page-body h1") == "Core team"

        page.click("sup.footnote-ref a")
        page.wait_for_url("**#fn1")
        footnote = page.locator("li.footnote-item#fn1")
        assert footnote.is_visible()
        assert "The Payments API is owned by the Core team" in footnote.inner_text()
        citation = page.locator("li.citation#cite-c0coreown444")
        assert "The Payments API is owned by the Core team" in citation.locator("blockquote.quote").inner_text()
        page.screenshot(path=str(artifacts_dir / "ui-citation.png"), full_page=True)

        citation.locator("a.source-link").click()
        page.wait_for_url("**/ui/pages/wiki/sources/platform-adr-7.md")
        assert page.inner_text("article.page-body h1") == "Platform ADR 7"
        page.screenshot(path=str(artifacts_dir / "ui-source-page.png"), full_page=True)
    assert dialogs == []


def test_hostile_page_runs_nothing(browser_page: Any, fresh_wiki: WikiFixture, artifacts_dir: Path) -> None:
    page = browser_page
    dialogs: list[str] = []
    violations: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    with serve(create_app(deps_for(fresh_wiki))) as port:
        base = f"http://127.0.0.1:{port}"
        for url in (
            f"{base}/ui/pages/wiki/concepts/hostile-page.md",
            f"{base}/pages/wiki/concepts/hostile-page.md?format=html",
            f"{base}/ui/search?q=%3Cscript%3Ewindow.__xss%3D9%3C/script%3E%3Cimg%20src=x%20onerror=alert(9)%3E",
        ):
            page.goto(url)
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)
            assert page.evaluate("typeof window.__xss") == "undefined", url
            # the only script is the UI's own file (none on the API's HTML): nothing from the page's text
            scripts = page.eval_on_selector_all("script", "els => els.map(e => [e.getAttribute('src'), e.text])")
            assert scripts == ([["/static/lore.js", ""]] if "/ui/" in url else []), url
        page.goto(f"{base}/ui/pages/wiki/concepts/hostile-page.md")
        assert "<script>window.__xss = 1; alert(1)</script>" in page.inner_text("article.page-body")
        for link in page.locator("article.page-body a").all():
            href = link.get_attribute("href") or ""
            assert not href.lower().startswith(("javascript:", "data:")), href
        page.locator("a.wikilink-broken", has_text="a wikilink to javascript").click()
        page.wait_for_timeout(300)
        assert page.url.endswith("/ui/pages/wiki/concepts/hostile-page.md")
        assert page.evaluate("typeof window.__xss") == "undefined"
        page.screenshot(path=str(artifacts_dir / "ui-hostile-page.png"), full_page=True)
    assert dialogs == []
