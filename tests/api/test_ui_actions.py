"""The web UI's actions through the app: log in and out of a closed wiki, upload, retract, resolve a
dispute, the graph and backlinks. Every form post is tried without a login, without (or with a wrong)
CSRF token and with a key lacking the scope, and must change nothing; then it is done for real and the
ledger is checked."""

from __future__ import annotations

import hashlib
import multiprocessing
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.keys import revoke_key
from api.session import COOKIE, SessionCodec, load_or_create_secret
from api.ui_auth import safe_next
from store.models import Contradiction, Job, Source
from tests.api.conftest import ADMIN_KEY, CURATE_KEY, INGEST_KEY, READ_KEY
from tests.api.wiki_builder import WikiFixture

HTML = {"Accept": "text/html,application/xhtml+xml"}
DOC = b"# Cache ADR\n\nThe edge cache keeps objects for 300 seconds before revalidation.\n"
K8S = "wiki/systems/kubernetes.md"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: TestClient, key: str, next_url: str = "/ui") -> str:
    """Log ``client`` in with ``key`` through the form; returns the CSRF token of the new session."""
    form = client.get("/ui/login", params={"next": next_url})
    assert form.status_code == 200
    done = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "key": key, "next": next_url}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == next_url
    return csrf_of(client.get("/ui").text)  # the logout form carries the logged-in session's token


def set_cookie_header(response) -> str:  # type: ignore[no-untyped-def]
    (header,) = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return header


@pytest.fixture
def closed(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> TestClient:
    """A closed wiki (reads need a key) of the test's own."""
    return make_client(fresh_wiki, open_reads=False)


def count(fx: WikiFixture, model: type, *where: object) -> int:
    with fx.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


# --- the session cookie ----------------------------------------------------------------------------


def test_session_cookie_is_signed_and_expires() -> None:
    now = [1_000_000.0]
    codec = SessionCodec("s" * 40, max_age_s=600, clock=lambda: now[0])
    session = codec.new(key_id=7, key_hash="ab" * 32)
    value = codec.dumps(session)
    assert codec.loads(value) == session
    payload, signature = value.split(".")
    assert codec.loads(f"{payload}.{signature[:-2]}AA") is None  # forged signature
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    assert codec.loads(f"{tampered}.{signature}") is None  # payload changed under its signature
    assert SessionCodec("t" * 40, clock=lambda: now[0]).loads(value) is None  # another secret
    assert codec.loads("") is None
    assert codec.loads("no-dot") is None
    assert codec.key_tag("ab" * 32) != codec.key_tag("cd" * 32)  # a key given a new secret ends its sessions
    now[0] += 599
    assert codec.loads(value) == session
    now[0] += 2
    assert codec.loads(value) is None  # past max_age_s
    now[0] = 1_000_000.0 - 3600
    assert codec.loads(value) is None  # issued in the future


def _secret_after(barrier: object, path: Path, out: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    out.put(load_or_create_secret(path))  # type: ignore[attr-defined]


def test_processes_starting_together_share_one_generated_secret(tmp_path: Path) -> None:
    path = tmp_path / "data" / "session.key"
    mp = multiprocessing.get_context("spawn")
    n = 8
    barrier, out = mp.Barrier(n), mp.Queue()
    procs = [mp.Process(target=_secret_after, args=(barrier, path, out)) for _ in range(n)]
    for p in procs:
        p.start()
    secrets = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(secrets)) == 1, f"{len(set(secrets))} different secrets"
    assert path.read_text().strip() == secrets[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["session.key"]  # no temporary file left


@pytest.mark.parametrize(
    ("wanted", "goes_to"),
    [
        ("/ui/pages/wiki/systems/kubernetes.md", "/ui/pages/wiki/systems/kubernetes.md"),
        ("//evil.example/ui", "/ui"),
        ("/\\evil.example", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("/ui\\@evil.example", "/ui"),
        ("/ui\r\nSet-Cookie: x=1", "/ui"),
        ("/pages", "/ui"),
        (None, "/ui"),
    ],
)
def test_after_login_only_the_ui_itself(wanted: str | None, goes_to: str) -> None:
    assert safe_next(wanted) == goes_to


# --- log in and out --------------------------------------------------------------------------------


def test_closed_wiki_sends_a_browser_to_log_in(closed: TestClient) -> None:
    r = closed.get(f"/ui/pages/{K8S}", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fpages%2Fwiki%2Fsystems%2Fkubernetes.md"
    plain = closed.get("/ui", follow_redirects=False)  # not a browser page request: the 401 page
    assert plain.status_code == 401
    assert 'href="/ui/login"' in plain.text
    assert closed.get("/ui", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200


def test_login_sets_a_signed_httponly_samesite_cookie_and_logout_ends_it(
    closed: TestClient, fresh_wiki: WikiFixture
) -> None:
    form = closed.get("/ui/login", params={"next": f"/ui/pages/{K8S}"})
    assert form.status_code == 200
    assert 'name="key" type="password"' in form.text
    pre = set_cookie_header(form)
    token = csrf_of(form.text)
    done = closed.post(
        "/ui/login", data={"csrf": token, "key": READ_KEY, "next": f"/ui/pages/{K8S}"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/pages/{K8S}"
    cookie = set_cookie_header(done)
    for part in ("HttpOnly", "SameSite=lax", "Path=/ui", "Max-Age=43200"):
        assert part.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http here; https gets Secure
    assert READ_KEY not in cookie  # the cookie names the key, never holds it
    assert cookie.split(";")[0] != pre.split(";")[0]  # a new session (and CSRF token) at login
    page = closed.get(f"/ui/pages/{K8S}", headers=HTML, follow_redirects=False)
    assert page.status_code == 200
    assert '<span class="user">reader</span>' in page.text
    after = csrf_of(page.text)
    assert after != token

    # logging out needs the session's token; then the wiki is closed again
    assert closed.post("/ui/logout", data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert closed.get("/ui", headers=HTML, follow_redirects=False).status_code == 200
    out = closed.post("/ui/logout", data={"csrf": after}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login"
    assert "Max-Age=0" in set_cookie_header(out) or "expires=" in set_cookie_header(out).lower()
    assert closed.get("/ui", headers=HTML, follow_redirects=False).status_code == 303


def test_login_failures_are_clear_and_leak_nothing(closed: TestClient) -> None:
    form = closed.get("/ui/login")
    token = csrf_of(form.text)
    for key in ("nope-not-a-key-0123456789", "", READ_KEY[:-1]):
        bad = closed.post("/ui/login", data={"csrf": token, "key": key}, follow_redirects=False)
        assert bad.status_code == 401
        assert "Unknown or revoked API key." in bad.text
        assert 'role="alert"' in bad.text
        assert "set-cookie" not in bad.headers  # no login
        if key:
            assert key not in bad.text  # the secret tried is not echoed
        assert "Traceback" not in bad.text
    # a login post without the form's token (another site's form, or cookies off) is refused
    closed.cookies.clear()
    forged = closed.post("/ui/login", data={"csrf": token, "key": READ_KEY}, follow_redirects=False)
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    assert "set-cookie" not in forged.headers


def test_a_revoked_key_ends_its_session(closed: TestClient, fresh_wiki: WikiFixture) -> None:
    login(closed, READ_KEY)
    assert closed.get("/ui", headers=HTML, follow_redirects=False).status_code == 200
    with fresh_wiki.session_factory() as s, s.begin():
        assert revoke_key(s, "reader") is True
    assert closed.get("/ui", headers=HTML, follow_redirects=False).status_code == 303
    again = closed.get("/ui/login")
    assert "You are logged in" not in again.text
    r = closed.post("/ui/login", data={"csrf": csrf_of(again.text), "key": READ_KEY}, follow_redirects=False)
    assert r.status_code == 401


def test_a_forged_cookie_is_not_a_login(closed: TestClient) -> None:
    login(closed, ADMIN_KEY)
    value = closed.cookies.get(COOKIE)
    assert value
    closed.cookies.clear()
    payload, signature = value.split(".")
    closed.cookies.set(COOKIE, f"{payload}.{signature[::-1]}", path="/ui")
    assert closed.get("/ui", headers=HTML, follow_redirects=False).status_code == 303


# --- upload ----------------------------------------------------------------------------------------


def test_upload_goes_through_intake_behind_login_csrf_and_scope(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    seen: list[tuple[list[int], str | None]] = []

    def dispatch(job_ids: list[int]) -> None:
        with fresh_wiki.session_factory() as session:  # committed before dispatch
            job = session.get(Job, job_ids[0])
            seen.append((job_ids, job.state if job else None))

    client = make_client(fresh_wiki, dispatch=dispatch)
    sid = hashlib.sha256(DOC).hexdigest()
    files = {"file": ("cache-adr.md", DOC, "text/markdown")}
    before = count(fresh_wiki, Source)

    anonymous = client.post("/ui/upload", files=files, data={"csrf": "x"}, follow_redirects=False)
    assert anonymous.status_code == 401
    assert "Upload" not in client.get("/ui").text.split("<main>")[0]  # no Upload link without a login

    token = login(client, INGEST_KEY)
    form = client.get("/ui/upload")
    assert 'enctype="multipart/form-data"' in form.text
    assert 'class="dropzone"' in form.text
    for bad in ({}, {"csrf": "wrong"}):
        refused = client.post("/ui/upload", files=files, data=bad, follow_redirects=False)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    assert count(fresh_wiki, Source) == before
    assert seen == []

    done = client.post("/ui/upload", files=files, data={"csrf": token, "name": ""}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/ui/sources/{sid}?uploaded=new"
    assert count(fresh_wiki, Source) == before + 1
    with fresh_wiki.session_factory() as session:
        source = session.get(Source, sid)
        assert source is not None
        assert source.origin == "cache-adr.md"
        assert "300 seconds" in (source.text or "")
    assert len(seen) == 1
    assert seen[0][1] == "queued"
    status = client.get(done.headers["location"])
    assert 'id="source-status">pending' in status.text
    assert '<meta http-equiv="refresh" content="2">' in status.text  # refreshes until done or failed

    again = client.post("/ui/upload", files=files, data={"csrf": token}, follow_redirects=False)
    assert again.headers["location"] == f"/ui/sources/{sid}?uploaded=known"
    assert len(seen) == 1
    empty = client.post(
        "/ui/upload", files={"file": ("e.md", b"", "text/markdown")}, data={"csrf": token}, follow_redirects=False
    )
    assert empty.status_code == 422
    assert "Refused" in empty.text
    assert 'class="error"' in empty.text


def test_upload_needs_the_ingest_scope(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    client = make_client(fresh_wiki)
    token = login(client, READ_KEY)
    assert 'class="dropzone"' not in client.get("/ui/upload").text
    r = client.post(
        "/ui/upload", files={"file": ("a.md", DOC, "text/markdown")}, data={"csrf": token}, follow_redirects=False
    )
    assert r.status_code == 403
    assert "lacks the &#x27;ingest&#x27; scope" in r.text
    assert count(fresh_wiki, Source, Source.id == hashlib.sha256(DOC).hexdigest()) == 0


# --- retract ---------------------------------------------------------------------------------------


def test_retract_asks_for_confirmation_and_needs_admin(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    sent: list[list[int]] = []
    client = make_client(fresh_wiki, dispatch=sent.append)
    sid = fresh_wiki.source_ids["adr"]
    url = f"/ui/sources/{sid}/retract"
    retractions = (Job.kind == "retract",)

    token = login(client, INGEST_KEY)
    assert "Retract this source" not in client.get(url).text
    assert client.post(url, data={"csrf": token}, follow_redirects=False).status_code == 403
    assert count(fresh_wiki, Job, *retractions) == 0

    client.cookies.clear()
    token = login(client, ADMIN_KEY)
    settled = client.get(f"/ui/sources/{sid}").text
    assert "Retract this source…" in settled
    assert 'http-equiv="refresh"' not in settled  # done, nothing under way: no refreshing
    confirm = client.get(url)
    assert 'class="danger">Retract this source</button>' in confirm.text
    assert "/ui/pages/wiki/services/payments-api.md" in confirm.text  # the pages it will touch
    assert client.post(url, data={"csrf": "wrong"}, follow_redirects=False).status_code == 403
    assert count(fresh_wiki, Job, *retractions) == 0
    done = client.post(url, data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/sources/{sid}?retracting=1"
    with fresh_wiki.session_factory() as s:
        job = s.scalars(select(Job).where(*retractions)).one()
        assert job.key == f"retract:{sid}"
    assert sent == [[job.id]]
    assert 'http-equiv="refresh"' in client.get(done.headers["location"]).text  # the retraction is under way
    missing = client.post("/ui/sources/" + "0" * 64 + "/retract", data={"csrf": token}, follow_redirects=False)
    assert missing.status_code == 404


# --- resolve a dispute -----------------------------------------------------------------------------


def test_resolve_a_dispute_from_the_page(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    sent: list[list[int]] = []
    client = make_client(fresh_wiki, dispatch=sent.append)
    url = "/ui/contradictions/1/resolve"
    keep = {"choice": "keep:c0k8s129aaaa", "note": "the ADR supersedes the incident report"}

    def status() -> str:
        with fresh_wiki.session_factory() as s:
            return s.scalars(select(Contradiction.status)).one()

    assert 'class="resolve"' not in client.get(f"/ui/pages/{K8S}").text  # anonymous: no form
    assert client.post(url, data=keep, follow_redirects=False).status_code == 401
    token = login(client, READ_KEY)
    assert 'class="resolve"' not in client.get(f"/ui/pages/{K8S}").text
    assert client.post(url, data={**keep, "csrf": token}, follow_redirects=False).status_code == 403
    client.cookies.clear()

    token = login(client, CURATE_KEY)
    page = client.get(f"/ui/pages/{K8S}").text
    assert 'action="/ui/contradictions/1/resolve"' in page
    assert 'value="keep:c0k8s129aaaa"' in page
    assert client.post(url, data=keep, follow_redirects=False).status_code == 403  # no token
    assert client.post(url, data={"csrf": token, "choice": "merge"}, follow_redirects=False).status_code == 400
    assert status() == "open"
    assert sent == []

    back = f"/ui/pages/{K8S}#dispute-1"
    done = client.post(url, data={**keep, "csrf": token, "back": back}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == back
    assert status() == "resolved"
    assert len(sent) == 1
    html = client.get("/ui/contradictions").text
    assert "Resolved (one side kept) by reviewer: the ADR supersedes the incident report" in html
    assert 'class="resolve"' not in client.get(f"/ui/pages/{K8S}").text  # nothing open is left
    again = client.post(url, data={**keep, "csrf": token}, follow_redirects=False)
    assert again.status_code == 409


# --- reading: backlinks and graph ------------------------------------------------------------------


def test_page_shows_backlinks_and_the_graph_draws_the_neighbourhood(client: TestClient) -> None:
    page = client.get(f"/ui/pages/{K8S}").text
    aside = page.split('<aside class="backlinks"', 1)[1].split("</aside>", 1)[0]
    assert 'href="/ui/pages/wiki/services/payments-api.md"' in aside  # [[Kubernetes]] in Payments API
    assert f'href="/ui/graph/{K8S}"' in page
    graph = client.get(f"/ui/graph/{K8S}")
    assert graph.status_code == 200
    svg = graph.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'href="/ui/pages/wiki/services/payments-api.md"' in svg
    assert "runs on" in svg  # the ledger's relation labels its edge
    assert "<script" not in svg
    assert client.get("/ui/graph/wiki/systems/nope.md").status_code == 404
