"""Managing API keys: create (the secret is shown once), list, revoke; and recording when a key was used.

The ledger keeps only a key's sha256 (:func:`api.auth.hash_secret`). ``lore keys create`` prints the
secret once; nothing can show it again. Revoking keeps the row (its name, scopes and times stay
listable) and makes every later request with the key a 401.

::

    KeyManagementError
    ├── KeyExists     ``create`` with a name already in use
    └── NoSuchKey     ``revoke`` of a name that matches no key
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.auth import SCOPES, hash_secret
from store.db import unit_of_work
from store.models import ApiKey, utcnow

log = logging.getLogger(__name__)

SECRET_PREFIX = "lore_"
NAME_MAX = 100


class KeyManagementError(Exception):
    """A key-management request that cannot be carried out; the message says why."""


class KeyExists(KeyManagementError):
    """A key of this name exists already (revoked keys keep their name)."""


class NoSuchKey(KeyManagementError):
    """No key has this name."""


@dataclass(frozen=True)
class KeyInfo:
    """A key as ``lore keys list`` shows it (never its secret)."""

    name: str
    scopes: tuple[str, ...]
    origin: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None


def _check_scopes(scopes: list[str]) -> tuple[str, ...]:
    wanted = tuple(sorted({s.strip() for s in scopes if s.strip()}))
    unknown = sorted(set(wanted) - set(SCOPES))
    if not wanted:
        raise ValueError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    return wanted


def create_key(session: Session, name: str, scopes: list[str]) -> str:
    """Add a key called ``name`` with ``scopes``; the caller commits.

    Returns:
        The new secret: the only time it exists outside the caller's memory is on its way to the user.

    Raises:
        ValueError: an empty or over-long name, a name with whitespace or ``:``, or a bad scope list.
        KeyExists: the name is taken (also by a revoked key).
    """
    if not name or len(name) > NAME_MAX or any(c.isspace() for c in name) or ":" in name:
        raise ValueError(f"a key name is 1-{NAME_MAX} characters without spaces or ':'")
    wanted = _check_scopes(scopes)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise KeyExists(f"a key named {name!r} exists already (names of revoked keys stay taken)")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, key_hash=hash_secret(secret), scopes=" ".join(wanted), revoked=False, origin="cli"))
    session.flush()
    return secret


def list_keys(session: Session) -> list[KeyInfo]:
    """Every key, revoked ones included, by name."""
    rows = session.scalars(select(ApiKey).order_by(ApiKey.name))
    return [
        KeyInfo(
            name=r.name,
            scopes=tuple(r.scopes.split()),
            origin=r.origin,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            revoked=r.revoked,
            revoked_at=r.revoked_at,
        )
        for r in rows
    ]


def revoke_key(session: Session, name: str) -> bool:
    """Revoke the key called ``name``; the caller commits.

    Returns:
        True when it was revoked now, False when it already was.

    Raises:
        NoSuchKey: no key has this name.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise NoSuchKey(f"no key named {name!r}; `lore keys list` shows them")
    if row.revoked:
        return False
    row.revoked, row.revoked_at = True, utcnow()
    session.flush()
    return True


class UsageRecorder:
    """Writes ``api_keys.last_used_at``, at most once per ``interval_s`` per key and process.

    A request must not wait on (or fail because of) this bookkeeping, so a failed write is logged and
    forgotten; the next use after the interval tries again.
    """

    def __init__(self, session_factory: sessionmaker[Session], *, interval_s: float = 60.0) -> None:
        self.session_factory = session_factory
        self.interval_s = interval_s
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

    def touch(self, key_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.interval_s:
                return
            self._last[key_id] = now
        try:
            with unit_of_work(self.session_factory) as session:
                session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
        except Exception as exc:  # bookkeeping never fails a request
            log.warning("could not record the use of key %s (%r)", key_id, exc)
