"""The web UI in Debian's headless Chromium (Playwright), served by uvicorn on loopback.

A person's path: search, open the page that answers, follow a wikilink, open a footnote and see the
citation's quote and its source. The hostile page: nothing it contains runs (no dialog, no global set by
injected script, no script element but the UI's own ``/static/lore.js``), whatever its markdown held.
And the journeys that change things on a closed wiki: log in, upload, resolve a dispute, retract, log
out; once with the jobs only queued, once with the pipeline behind it (the fake model server), where the
uploaded document's page appears and its facts leave the page after the retraction.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.deps import ApiDeps
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


def test_journey_log_in_upload_resolve_retract(
    browser_page: Any, fresh_wiki: WikiFixture, artifacts_dir: Path, tmp_path: Path
) -> None:
    """A closed wiki in Chromium: log in with a key, upload a document and follow its progress, resolve
    the open dispute and see it resolved, retract a source after confirming, log out. Screenshots go to
    ``artifacts/ui/``. The jobs are not run here (no worker): each step's job is checked in the ledger."""
    from sqlalchemy import select

    from store.models import Contradiction, Job, Source
    from tests.api.conftest import ADMIN_KEY

    shots = artifacts_dir / "ui"
    shots.mkdir(exist_ok=True)
    page = browser_page
    dialogs: list[str] = []
    violations: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    dispatched: list[list[int]] = []
    doc = tmp_path / "cache-adr.md"
    doc.write_bytes(b"# Cache ADR\n\nThe edge cache keeps objects for 300 seconds before revalidation.\n")
    app = create_app(deps_for(fresh_wiki, open_reads=False, dispatch=dispatched.append))
    with serve(app) as port:
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/ui/pages/wiki/systems/kubernetes.md")
        page.wait_for_url("**/ui/login?next=*")  # a closed wiki sends the browser to log in
        page.fill("input[name=key]", "not-a-key-at-all-0123456789")
        page.click("form.login-form button")
        assert page.inner_text("p.error") == "Unknown or revoked API key."
        page.screenshot(path=str(shots / "01-login-refused.png"), full_page=True)
        page.fill("input[name=key]", ADMIN_KEY)  # admin holds ingest and curate too
        page.click("form.login-form button")
        page.wait_for_url("**/ui/pages/wiki/systems/kubernetes.md")
        assert page.inner_text("header .user") == "root"
        cookie = next(c for c in page.context.cookies() if c["name"] == "lore_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie") == ""  # no script reads the session
        assert page.locator("aside.backlinks a", has_text="Payments API").count() == 1
        page.screenshot(path=str(shots / "02-page-logged-in.png"), full_page=True)

        # "/" focuses search: the UI's own script runs under its policy
        page.locator("h1").first.click()
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.name") == "q"

        # upload: the form posts the file, the source's page shows its progress
        page.click("header nav a:text('Upload')")
        page.wait_for_url("**/ui/upload")
        # drop the file on the drop zone (what a person's drag and drop sends); lore.js puts it in the input
        page.evaluate(
            """text => {
                const dt = new DataTransfer();
                dt.items.add(new File([text], "cache-adr.md", {type: "text/markdown"}));
                document.querySelector(".dropzone").dispatchEvent(
                    new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""",
            doc.read_text(),
        )
        assert page.evaluate("document.querySelector('input[type=file]').files[0].name") == "cache-adr.md"
        assert page.inner_text(".dropzone .drop-name") == "cache-adr.md"
        page.screenshot(path=str(shots / "03-upload.png"), full_page=True)
        page.click("form.upload button")
        page.wait_for_url("**/ui/sources/*?uploaded=new")
        assert page.inner_text("#source-status") == "pending"
        assert page.locator("section.progress progress").count() == 1
        page.screenshot(path=str(shots / "04-upload-progress.png"), full_page=True)
        with fresh_wiki.session_factory() as s:
            source = s.scalars(select(Source).where(Source.origin == "cache-adr.md")).one()
            (extract,) = s.scalars(select(Job).where(Job.source_id == source.id)).all()
        assert [extract.id] in dispatched

        # resolve the dispute on the Kubernetes page
        page.goto(f"{base}/ui/pages/wiki/systems/kubernetes.md")
        form = page.locator("form.resolve")
        form.locator("input[value='keep:c0k8s129aaaa']").check()
        form.locator("textarea").fill("the ADR supersedes the incident report")
        page.screenshot(path=str(shots / "05-resolve.png"), full_page=True)
        form.locator("button").click()
        page.wait_for_url("**/ui/pages/wiki/systems/kubernetes.md*")
        assert page.locator("form.resolve").count() == 0
        page.goto(f"{base}/ui/contradictions")
        assert "Resolved (one side kept) by root: the ADR supersedes the incident report" in page.inner_text("main")
        page.screenshot(path=str(shots / "06-resolved.png"), full_page=True)
        with fresh_wiki.session_factory() as s:
            assert s.scalars(select(Contradiction.resolved_by)).one() == "root"

        # retract a source, after a confirmation page
        sid = fresh_wiki.source_ids["adr"]
        page.goto(f"{base}/ui/sources/{sid}")
        page.click("a.retract-link")
        page.wait_for_url(f"**/ui/sources/{sid}/retract")
        page.screenshot(path=str(shots / "07-retract-confirm.png"), full_page=True)
        page.click("form.confirm button.danger")
        page.wait_for_url(f"**/ui/sources/{sid}?retracting=1")
        with fresh_wiki.session_factory() as s:
            retract = s.scalars(select(Job).where(Job.kind == "retract")).one()
        assert retract.key == f"retract:{sid}"
        assert [retract.id] in dispatched

        # dark mode follows the system's colour scheme
        page.emulate_media(color_scheme="dark")
        page.goto(f"{base}/ui")
        dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.emulate_media(color_scheme="light")
        page.reload()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=str(shots / "08-dark.png"), full_page=True)

        page.click("form.logout button")
        page.wait_for_url("**/ui/login")
        page.goto(f"{base}/ui")
        page.wait_for_url("**/ui/login?next=*")
    assert dialogs == []
    assert violations == []


def test_journey_with_the_pipeline_page_appears_and_retracted_facts_leave(
    browser_page: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    """The whole write path behind the UI: an upload is extracted and composed (the fake model server
    answers; the jobs run as soon as they are dispatched), its entity page appears with the document's
    fact, and after the source is retracted in the UI the fact has left that page."""
    from bench.fake_llm import FakeLLM
    from store.db import make_engine, make_session_factory
    from store.git_store import GitStore
    from store.migrate import upgrade
    from synth.client import Endpoint, ModelClient
    from synth.deps import SynthDeps
    from synth.runner import drain
    from tests.api.conftest import ADMIN_KEY, KEYS

    shots = artifacts_dir / "ui"
    shots.mkdir(exist_ok=True)
    url = f"sqlite:///{tmp_path / 'lore.db'}"
    upgrade(url)
    store = GitStore(tmp_path / "wiki")
    store.init()
    factory = make_session_factory(make_engine(url))
    doc = tmp_path / "ledger-notes.md"
    doc.write_text(
        "# Ledger notes\n\nThe Ledger service runs on PostgreSQL 16.\n\nThe Billing team owns the Ledger service.\n"
    )
    page = browser_page
    with FakeLLM(seed=1) as fake:
        client = ModelClient([Endpoint(fake.base_url, "fake-llm")], max_retries=2)
        synth = SynthDeps(factory, store, client, catalog_debounce_s=0.0)
        ran: list[dict[str, int]] = []
        app = create_app(
            ApiDeps(
                session_factory=factory,
                store=store,
                api_keys=list(KEYS),
                open_reads=False,
                dispatch=lambda _ids: ran.append(drain(synth)),
            )
        )
        with serve(app) as port:
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/ui/login")
            page.fill("input[name=key]", ADMIN_KEY)
            page.click("form.login-form button")
            page.wait_for_url("**/ui")
            page.goto(f"{base}/ui/upload")
            page.set_input_files("input[type=file]", str(doc))
            page.click("form.upload button")
            page.wait_for_url("**/ui/sources/*?uploaded=new")
            source_url = page.url.split("?")[0]
            assert ran, "the upload dispatched no job"
            assert page.inner_text("#source-status") == "done", page.inner_text("main")
            page.screenshot(path=str(shots / "10-pipeline-source-done.png"), full_page=True)
            touched = [
                a.get_attribute("href") or ""
                for a in page.locator("ul.touched a").all()
                if "/wiki/sources/" not in (a.get_attribute("href") or "")
            ]
            assert touched, page.inner_text("main")
            pages_with_fact = []
            for href in touched:
                page.goto(base + href)
                if "PostgreSQL 16" in page.inner_text("article.page-body"):
                    pages_with_fact.append(href)
            assert pages_with_fact, touched
            page.goto(base + pages_with_fact[0])
            page.screenshot(path=str(shots / "11-pipeline-page-appeared.png"), full_page=True)

            page.goto(source_url + "/retract")
            page.click("form.confirm button.danger")
            page.wait_for_url("**?retracting=1")
            assert page.inner_text("#source-status") == "retracted"
            for href in pages_with_fact:
                r = page.goto(base + href)
                assert r is not None
                if r.status == 200:
                    assert "PostgreSQL 16" not in page.inner_text("article.page-body"), href
                else:
                    assert r.status == 404, href
            page.goto(base + pages_with_fact[0])
            page.screenshot(path=str(shots / "12-pipeline-fact-left.png"), full_page=True)
