"""API keys with scopes.

A key is a random secret; the ledger keeps only ``sha256(secret)`` (``store.models.ApiKey``), so a
leaked database does not leak usable keys. Clients send ``Authorization: Bearer <secret>``. Scopes are
``read``, ``ingest``, ``curate`` (review disputes; includes ``read``, since a reviewer must read the
disputes) and ``admin``; ``admin`` includes the other three.

- no key, or a key that matches none (or is revoked): :class:`api.errors.Unauthorized` (401 with
  ``WWW-Authenticate: Bearer``);
- a valid key without the scope: :class:`api.errors.Forbidden` (403);
- reads may be left open by configuration (``open_reads``): a read route then accepts no key, or any
  valid key whatever its scopes; a key that is sent must still be valid.

Bootstrap keys come from configuration as ``name:scope1+scope2:secret`` and are inserted (or updated by
name) at start-up; a bootstrap key that has left the configuration is revoked then. Keys made with
``lore keys create`` (:mod:`api.keys`) are never touched by start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import Forbidden, Unauthorized
from store.models import ApiKey, utcnow

SCOPES = ("read", "ingest", "curate", "admin")
REALM = "lore"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and scopes, or the anonymous reader."""

    name: str
    scopes: frozenset[str]
    anonymous: bool = False
    key_id: int | None = None

    def has(self, scope: str) -> bool:
        """True when this principal holds ``scope`` (``admin`` holds every scope, ``curate`` also ``read``)."""
        return scope in self.scopes or "admin" in self.scopes or (scope == "read" and "curate" in self.scopes)


ANONYMOUS = Principal(name="anonymous", scopes=frozenset({"read"}), anonymous=True)


def hash_secret(secret: str) -> str:
    """The stored form of a key: hex sha256 of its UTF-8 secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_bootstrap_key(spec: str) -> tuple[str, frozenset[str], str]:
    """Split ``name:scope1+scope2:secret`` (the secret may itself contain ``:``).

    Raises:
        ValueError: a part is missing, a scope is unknown, or the secret is shorter than 16 characters.
    """
    parts = spec.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError("an API key must look like name:scope1+scope2:secret")
    name, scope_text, secret = parts
    scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise ValueError(f"API key {name!r}: unknown scopes {sorted(unknown)}; use {'+'.join(SCOPES)}")
    if len(secret) < 16:
        raise ValueError(f"API key {name!r}: the secret must have at least 16 characters")
    return name, scopes, secret


def install_bootstrap_keys(session: Session, specs: list[str]) -> BootstrapResult:
    """Insert or update (by name) the configured keys and revoke the ones that left; the caller commits.

    A configured name that matches a ``lore keys create`` key takes it over (it becomes a bootstrap
    key). Rows of ``origin == "config"`` whose name is no longer configured are revoked, so removing a
    key from ``LORE_API__API_KEYS`` and restarting locks it out.

    Returns:
        How many keys were inserted or changed, and the names revoked.
    """
    changed = 0
    configured: set[str] = set()
    for spec in specs:
        name, scopes, secret = parse_bootstrap_key(spec)
        configured.add(name)
        digest = hash_secret(secret)
        scope_text = " ".join(sorted(scopes))
        row = session.scalar(select(ApiKey).where(ApiKey.name == name))
        if row is None:
            session.add(ApiKey(name=name, key_hash=digest, scopes=scope_text, revoked=False, origin="config"))
            changed += 1
        elif (row.key_hash, row.scopes, row.revoked, row.origin) != (digest, scope_text, False, "config"):
            row.key_hash, row.scopes, row.revoked, row.origin = digest, scope_text, False, "config"
            row.revoked_at = None
            changed += 1
        session.flush()
    revoked: list[str] = []
    stale = select(ApiKey).where(ApiKey.origin == "config", ApiKey.revoked.is_(False))
    for row in session.scalars(stale):
        if row.name not in configured:
            row.revoked, row.revoked_at = True, utcnow()
            revoked.append(row.name)
    session.flush()
    return BootstrapResult(changed=changed, revoked=tuple(sorted(revoked)))


@dataclass(frozen=True)
class BootstrapResult:
    """What :func:`install_bootstrap_keys` did."""

    changed: int
    revoked: tuple[str, ...]


def _challenge(error: str | None = None, scope: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if scope:
        value += f', scope="{scope}"'
    return {"WWW-Authenticate": value}


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def lookup_key(session: Session, secret: str) -> Principal | None:
    """The principal of an unrevoked key with this secret, or None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret)))
    if row is None or row.revoked:
        return None
    return Principal(name=row.name, scopes=frozenset(row.scopes.split()), key_id=row.id)


def authorize(session: Session, authorization: str | None, scope: str, *, open_reads: bool) -> Principal:
    """Check a request's ``Authorization`` header for ``scope``.

    Args:
        session: a ledger session for the key lookup.
        authorization: the raw header value (None when absent).
        scope: the scope the route needs.
        open_reads: when True and ``scope == "read"``, a request without a key is allowed.

    Returns:
        The caller.

    Raises:
        Unauthorized: no key where one is needed, a malformed header, or an unknown/revoked key.
        Forbidden: the key lacks ``scope``.
    """
    if authorization is None or not authorization.strip():
        if scope == "read" and open_reads:
            return ANONYMOUS
        raise Unauthorized(f"this route needs an API key with the {scope!r} scope", headers=_challenge())
    secret = bearer_secret(authorization)
    if secret is None:
        raise Unauthorized("use 'Authorization: Bearer <key>'", headers=_challenge("invalid_request"))
    principal = lookup_key(session, secret)
    if principal is None:
        raise Unauthorized("unknown or revoked API key", headers=_challenge("invalid_token"))
    if not principal.has(scope) and not (scope == "read" and open_reads):
        raise Forbidden(
            f"key {principal.name!r} lacks the {scope!r} scope", headers=_challenge("insufficient_scope", scope)
        )
    return principal
