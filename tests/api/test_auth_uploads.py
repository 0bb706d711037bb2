"""API keys (missing, wrong, under-scoped), uploads through intake, the streaming size cap, rate limits."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.auth import hash_secret, parse_bootstrap_key
from api.errors import RateLimited
from api.ratelimit import RateLimiter
from store.models import ApiKey, Job, Source
from tests.api.conftest import ADMIN_KEY, INGEST_KEY, READ_KEY, deps_for, serve
from tests.api.wiki_builder import WikiFixture

DOC = b"# Cache ADR\n\nThe edge cache keeps objects for 300 seconds before revalidation.\n"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(client: TestClient, data: bytes = DOC, key: str | None = INGEST_KEY, name: str = "cache-adr.md"):  # type: ignore[no-untyped-def]
    headers = bearer(key) if key else {}
    return client.post("/sources", files={"file": (name, data, "text/markdown")}, headers=headers)


def test_bootstrap_keys_are_stored_hashed(client: TestClient, wiki_fx: WikiFixture) -> None:
    with wiki_fx.session_factory() as session:
        rows = {k.name: k for k in session.scalars(select(ApiKey))}
    assert set(rows) == {"ingester", "reader", "root", "reviewer"}
    assert rows["ingester"].key_hash == hashlib.sha256(INGEST_KEY.encode()).hexdigest()
    assert rows["root"].scopes == "admin"
    assert all(INGEST_KEY not in (k.key_hash + k.scopes + k.name) for k in rows.values())


def test_bootstrap_key_format_is_checked() -> None:
    assert parse_bootstrap_key("ci:read+ingest:abc:def:0123456789") == (
        "ci",
        frozenset({"read", "ingest"}),
        "abc:def:0123456789",
    )
    for bad in ("ci:read", "ci:write:0123456789abcdef", "ci:read:short", ":read:0123456789abcdef"):
        with pytest.raises(ValueError):  # noqa: PT011 - the message is checked by the next line's type
            parse_bootstrap_key(bad)


def test_write_refuses_missing_wrong_and_underscoped_keys(client: TestClient) -> None:
    missing = upload(client, key=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"] == "Unauthorized"
    wrong = upload(client, key="not-a-key-0123456789")
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    malformed = client.post("/sources", files={"file": ("a.md", DOC)}, headers={"Authorization": f"Basic {READ_KEY}"})
    assert malformed.status_code == 401
    reader = upload(client, key=READ_KEY)
    assert reader.status_code == 403
    assert reader.json()["error"] == "Forbidden"
    assert 'scope="ingest"' in reader.headers["www-authenticate"]


def test_closed_reads_need_a_read_key(make_client: Callable[..., TestClient]) -> None:
    closed = make_client(open_reads=False)
    for url in ("/pages", "/query?q=kubernetes", "/sources", "/ui", "/metrics"):
        r = closed.get(url)
        assert r.status_code == 401, url
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert closed.get("/pages", headers=bearer(READ_KEY)).status_code == 200
    assert closed.get("/pages", headers=bearer(ADMIN_KEY)).status_code == 200
    assert closed.get("/pages", headers=bearer(INGEST_KEY)).status_code == 403
    assert closed.get("/pages", headers=bearer("wrong-key-0123456789")).status_code == 401
    assert closed.get("/health/live").status_code == 200  # probes stay open
    open_ = make_client()
    assert open_.get("/pages").status_code == 200
    assert open_.get("/pages", headers=bearer(INGEST_KEY)).status_code == 200  # open reads: any valid key
    assert open_.get("/pages", headers=bearer("wrong-key-0123456789")).status_code == 401  # a sent key must be valid


def test_revoked_key_is_refused(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    client = make_client(fresh_wiki)
    with fresh_wiki.session_factory() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(INGEST_KEY)))
        assert row is not None
        row.revoked = True
        session.commit()
    assert upload(client).status_code == 401


def test_upload_goes_through_intake_and_dispatches_after_commit(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    seen: list[tuple[list[int], str | None]] = []

    def dispatch(job_ids: list[int]) -> None:
        # The jobs must be committed (visible to another session) before they are dispatched.
        with fresh_wiki.session_factory() as session:
            job = session.get(Job, job_ids[0])
            seen.append((job_ids, job.state if job else None))

    client = make_client(fresh_wiki, dispatch=dispatch)
    first = upload(client)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["source_id"] == hashlib.sha256(DOC).hexdigest()
    assert body["status"] == "pending"
    assert body["duplicate"] is False
    assert len(body["job_ids"]) == 1
    assert seen == [(body["job_ids"], "queued")]
    with fresh_wiki.session_factory() as session:
        source = session.get(Source, body["source_id"])
        assert source is not None
        assert source.origin == "cache-adr.md"
        assert source.text is not None
        assert "300 seconds" in source.text
    again = upload(client, name="other-name.md")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["job_ids"] == []
    assert len(seen) == 1
    detail = client.get(f"/sources/{body['source_id']}").json()
    assert detail["source"]["status"] == "pending"
    assert detail["jobs"][0]["kind"] == "extract"


def test_upload_refusals(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    client = make_client(fresh_wiki)
    empty = upload(client, data=b"")
    assert empty.status_code == 422
    assert empty.json()["error"] == "Refused"
    no_file = client.post("/sources", data={"name": "x"}, headers=bearer(INGEST_KEY))
    assert no_file.status_code == 400
    assert no_file.json()["error"] == "BadRequest"
    not_multipart = client.post("/sources", content=DOC, headers={**bearer(INGEST_KEY), "Content-Type": "text/plain"})
    assert not_multipart.status_code == 400
    traversal = upload(client, data=b"# Notes\n\nplain words here\n", name="../../etc/passwd")
    assert traversal.status_code == 202
    with fresh_wiki.session_factory() as session:
        source = session.get(Source, traversal.json()["source_id"])
        assert source is not None
        assert ".." not in source.raw_path
        assert source.raw_path.startswith("raw/")


def test_upload_cap_by_declared_length(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    client = make_client(fresh_wiki, max_upload_bytes=1024)
    big = upload(client, data=b"x" * 5000)
    assert big.status_code == 413
    assert big.json()["error"] == "PayloadTooLarge"
    assert upload(client, data=b"# small\n\nfits under the cap\n").status_code == 202
    with fresh_wiki.session_factory() as session:
        assert session.scalar(select(Source).where(Source.size == 5000)) is None


@pytest.fixture
def served_app(fresh_wiki: WikiFixture) -> Iterator[tuple[int, WikiFixture]]:
    """The app served by uvicorn on a loopback port (real HTTP, real streaming)."""
    with serve(create_app(deps_for(fresh_wiki, max_upload_bytes=64 * 1024))) as port:
        yield port, fresh_wiki


def test_upload_cap_while_streaming(served_app: tuple[int, WikiFixture]) -> None:
    """A chunked upload with no length is refused once it passes the cap, before the client has sent it all."""
    port, fx = served_app
    boundary = "lore-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.md"\r\n'
        "Content-Type: text/markdown\r\n\r\n"
    ).encode()
    chunk = b"y" * 16 * 1024
    total_planned = 100 * len(chunk)  # 1.6 MB, far above the 64 KiB cap
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /sources HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {INGEST_KEY}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )

        def send_chunk(data: bytes) -> None:
            sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        send_chunk(head)
        sock.settimeout(0.05)
        response = b""
        while sent < total_planned:
            try:
                send_chunk(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            try:
                response += sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                continue
            if response:
                break
        sock.settimeout(5)
        deadline = time.monotonic() + 5
        while not _complete(response) and time.monotonic() < deadline:
            try:
                more = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not more:
                break
            response += more
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"PayloadTooLarge" in response
    assert sent < total_planned / 4, f"the server read {sent} bytes before refusing"
    with fx.session_factory() as session:
        assert session.scalar(select(Source).where(Source.origin == "big.md")) is None


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def test_upload_rate_limit(make_client: Callable[..., TestClient], fresh_wiki: WikiFixture) -> None:
    client = make_client(fresh_wiki, uploads_per_minute=2)
    assert upload(client, data=b"# one\n\nfirst document here\n").status_code == 202
    assert upload(client, data=b"# two\n\nsecond document here\n").status_code == 202
    third = upload(client, data=b"# three\n\nthird document here\n")
    assert third.status_code == 429
    assert third.json()["error"] == "RateLimited"
    assert int(third.headers["retry-after"]) >= 1
    assert upload(client, data=b"# four\n\nfourth\n", key=ADMIN_KEY).status_code == 202  # per key
    with fresh_wiki.session_factory() as session:
        assert session.scalar(select(Source).where(Source.origin == "cache-adr.md")) is not None
        assert not any("third" in (s.text or "") for s in session.scalars(select(Source)))


def test_rate_limiter_window_slides() -> None:
    limiter = RateLimiter(2, 1.0)
    limiter.hit("k")
    limiter.hit("k")
    with pytest.raises(RateLimited) as info:
        limiter.hit("k")
    assert info.value.headers["Retry-After"] == "1"
    limiter.hit("other")
    time.sleep(1.1)
    limiter.hit("k")  # the first events left the window


@pytest.mark.services
def test_two_api_replicas_share_one_upload_limit_on_redis(
    make_client: Callable[..., TestClient], fresh_wiki: WikiFixture
) -> None:
    from tests.services import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        first = make_client(fresh_wiki, uploads_per_minute=2, rate_limit_storage=redis.url)
        second = make_client(fresh_wiki, uploads_per_minute=2, rate_limit_storage=redis.url)
        alone = make_client(fresh_wiki, uploads_per_minute=2)  # per process: its own budget
        assert upload(first, data=b"# r1\n\nreplica one document\n").status_code == 202
        assert upload(second, data=b"# r2\n\nreplica two document\n").status_code == 202
        refused = upload(first, data=b"# r3\n\nover the shared budget\n")
        assert refused.status_code == 429
        assert upload(second, data=b"# r4\n\nover it on the other replica too\n").status_code == 429
        assert upload(alone, data=b"# r5\n\nan in-process limiter counts alone\n").status_code == 202
    finally:
        redis.close()
