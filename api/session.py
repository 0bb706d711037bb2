"""The web UI's login session: a signed cookie that names an API key, and the CSRF token of its forms.

A browser cannot send ``Authorization: Bearer``, so ``/ui/login`` exchanges a key for a cookie. The
cookie holds no secret: it is ``base64url(JSON) "." base64url(HMAC-SHA256)`` over

- ``c``: the session's CSRF token (32 random bytes), echoed by every form the UI renders;
- ``k``: the ledger id of the key that logged in (absent before login);
- ``t``: when the session was issued (seconds since the epoch);
- ``h``: a tag of the key's stored hash, ``HMAC(secret, key hash)``, so a key whose secret changed
  (a bootstrap key given a new secret) ends its old sessions.

Nothing about the key is trusted from the cookie but its id: each request looks the key up again
(:func:`session_principal`), so a session has the key's scopes of now, and a revoked key's session is
refused at once. A session ends ``max_age_s`` after login. The signing secret comes from settings
(``LORE_API__SESSION_SECRET``) or is generated once into the data folder (:func:`load_or_create_secret`).

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (a cross-site form post does not
carry it) and ``Secure`` when the request came over https; its path is ``/ui``, so the REST routes
never see it and stay bearer-only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Principal
from store.models import ApiKey

COOKIE = "lore_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf"
#: Clock skew tolerated on ``issued`` (a session issued by another replica a moment "in the future").
SKEW_S = 60
_CONTEXT = b"lore-ui-session\n"


@dataclass(frozen=True)
class UiSession:
    """What the session cookie says (after its signature was checked)."""

    csrf: str
    issued: int
    key_id: int | None = None
    key_tag: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.key_id is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies.

    Args:
        secret: the signing secret (any length; at least 32 random bytes are expected).
        max_age_s: a session older than this is refused.
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, secret: str, max_age_s: int = 12 * 3600, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the session secret is empty")
        self._secret = secret.encode("utf-8")
        self.max_age_s = max_age_s
        self.clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest())

    def key_tag(self, key_hash: str) -> str:
        """The tag binding a session to a key's stored hash (changes when the key's secret does)."""
        return hmac.new(self._secret, b"key\n" + key_hash.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def new(self, key_id: int | None = None, key_hash: str | None = None) -> UiSession:
        """A fresh session (a new CSRF token), logged in as ``key_id`` when given."""
        tag = self.key_tag(key_hash) if key_hash is not None else None
        return UiSession(csrf=secrets.token_urlsafe(32), issued=int(self.clock()), key_id=key_id, key_tag=tag)

    def dumps(self, session: UiSession) -> str:
        """The cookie value of ``session``."""
        body: dict[str, object] = {"c": session.csrf, "t": session.issued}
        if session.key_id is not None:
            body["k"], body["h"] = session.key_id, session.key_tag
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def loads(self, value: str | None) -> UiSession | None:
        """The session a cookie value holds, or None when it is missing, forged, malformed or expired."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            csrf, issued = str(body["c"]), int(body["t"])
            key_id = int(body["k"]) if body.get("k") is not None else None
            tag = str(body["h"]) if key_id is not None else None
        except (ValueError, KeyError, TypeError):
            return None
        now = self.clock()
        if issued > now + SKEW_S or now - issued > self.max_age_s or len(csrf) < 32:
            return None
        return UiSession(csrf=csrf, issued=issued, key_id=key_id, key_tag=tag)


def csrf_ok(session: UiSession | None, token: str | None) -> bool:
    """Whether a form's CSRF token is its session's (constant-time comparison)."""
    if session is None or not token:
        return False
    return hmac.compare_digest(session.csrf.encode("utf-8"), token.encode("utf-8"))


def session_principal(db: Session, codec: SessionCodec, session: UiSession) -> Principal | None:
    """The principal of a logged-in session: its key as the ledger has it now, or None.

    None when the session is not logged in, the key is gone or revoked, or its hash changed since login.
    """
    if session.key_id is None or session.key_tag is None:
        return None
    row = db.scalar(select(ApiKey).where(ApiKey.id == session.key_id))
    if row is None or row.revoked or not hmac.compare_digest(codec.key_tag(row.key_hash), session.key_tag):
        return None
    return Principal(name=row.name, scopes=frozenset(row.scopes.split()), key_id=row.id)


def key_hash_of(db: Session, key_id: int) -> str | None:
    """The stored hash of a key (to bind a new session to it)."""
    return db.scalar(select(ApiKey.key_hash).where(ApiKey.id == key_id))


def load_or_create_secret(path: Path) -> str:
    """The session secret kept in ``path``, created (mode 0600, 48 random bytes) on first use.

    Two processes starting together both end up with the file's one secret: creation is exclusive and
    the loser reads what the winner wrote.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secret + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it first
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return secret
