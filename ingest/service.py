"""Intake: a file or upload becomes a stored raw copy, a Source row and an ``extract`` job.

DESIGN section 3: ``ingest file -> sniff type -> text (markdown) -> sha256 -> known? stop : store raw
+ Source row -> job "extract"``. The watcher, ``lore ingest`` and the upload endpoint all call
``intake_file`` or ``intake_bytes``. Outcomes (``IntakeResult.status``):

- ``refused``: not taken in (symlink, FIFO, too big, empty, outside the folder, changed while reading);
  nothing stored, no row;
- ``known``: the current version of the document at this name already has these bytes, or they are a
  copy of another current document; nothing is done;
- ``moved``: a rename. The bytes are those of a current document whose file is no longer in the folder
  (only a folder ingest, ``root`` given, can tell) and nothing is current under the new name: the
  document keeps its version row, claims and raw copy and takes the new name (its source page is
  rendered again);
- ``new`` / ``new_version``: raw bytes committed to ``raw/<slug>.<ext>`` (own commit, trailer
  ``Lore-Source: <id>``), a ``pending`` Source row, an ``extract`` job. A new version is a document
  whose origin key (normalised relative path or upload name) matches a current source with other
  content: it records ``previous_id`` (the newest arrival under that name, even a failed one) and the
  next version number, and the job payload carries ``previous_id`` (the extract flow replaces every
  older version). The newest arrival is the current version whatever its bytes: bytes equal to an
  earlier, replaced version (a revert) make a new version row (``version_id``: the same raw blob under
  a new id), so the earlier content becomes current again;
- ``failed``: sniffing or parsing failed; the raw bytes are still committed and the row records the
  reason, but no job is made.

Ids: a version row's id is the sha256 of its bytes; the n-th later row with the same bytes (a revert)
is ``sha256("<sha256>:<n>")`` (``version_id``), found by walking that sequence (``versions_with_content``).

Transactions: the service only flushes; the caller's boundary commits, then hands ``job_ids`` to the
dispatcher (enqueue after commit). Raw bytes are committed to git before the row is flushed, so a row
never points at bytes that are missing; an orphaned raw file (the transaction rolled back) is harmless
and reused by the retry. On SQLite the session's write transaction stays open while the document is
parsed (at most ``parser_timeout_s``): boundaries should use one short unit of work per document.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ingest.errors import ParseFailed, Refused, Unsupported
from ingest.naming import base_slug, display_name, origin_key
from ingest.reader import human_size, read_file
from ingest.sandbox import parse_in_sandbox
from ingest.sniff import sniff
from store.git_store import ABSENT, GitStore, ReadResult
from store.jobs import enqueue_job
from store.models import Source

__all__ = ["IntakeResult", "current_version", "deleted_source", "intake_bytes", "intake_file", "version_id"]

log = logging.getLogger(__name__)

UNKNOWN_MEDIA_TYPE = "application/octet-stream"
CURRENT_EXCLUDED = ("retracted", "replaced")


@dataclass(frozen=True)
class IntakeResult:
    """What intake did with one document.

    Attributes:
        source_id: the sha256 of the bytes (None when refused).
        status: ``new`` | ``new_version`` | ``moved`` | ``known`` | ``failed`` | ``refused``.
        reason: why it failed or was refused (or which source it duplicates); None for new ones.
        job_ids: jobs to dispatch once the caller has committed.
        origin: the sanitised name it arrived under.
    """

    source_id: str | None
    status: str
    reason: str | None = None
    job_ids: list[int] = field(default_factory=list)
    origin: str = ""


def intake_file(
    session: Session,
    store: GitStore,
    path: Path,
    *,
    root: Path | None,
    max_bytes: int,
    parser_timeout_s: float,
    parser_memory_mb: int,
) -> IntakeResult:
    """Take in one file of the ingest folder.

    Args:
        session: the caller's session (flushed, not committed).
        store: the git store the raw bytes go to.
        path: the file.
        root: the ingest folder; when given, nothing outside it is read and the origin is the path
            relative to it.
        max_bytes: largest accepted file.
        parser_timeout_s: wall-clock limit of the parser.
        parser_memory_mb: memory limit of the parser.

    Returns:
        The outcome; refusals are results, not exceptions.

    Raises:
        StoreError: the git store failed (retry the whole unit of work).
    """
    try:
        found = read_file(Path(path), root=root, max_bytes=max_bytes)
    except Refused as exc:
        origin = display_name(str(path) if root is None else Path(path).name)
        log.info("refused %s: %s", origin, exc.reason)
        return IntakeResult(None, "refused", exc.reason, [], origin)
    return _intake(
        session,
        store,
        found.data,
        display_name(found.relative),
        origin_key(found.relative),
        max_bytes=max_bytes,
        parser_timeout_s=parser_timeout_s,
        parser_memory_mb=parser_memory_mb,
        root=root,
    )


def intake_bytes(
    session: Session,
    store: GitStore,
    data: bytes,
    origin: str,
    *,
    max_bytes: int,
    parser_timeout_s: float,
    parser_memory_mb: int,
    key: str | None = None,
) -> IntakeResult:
    """Take in an uploaded document.

    Args:
        data: the bytes.
        origin: the upload's name; metadata only (sanitised, never used as a path).
        key: the origin key recognising new versions; default derived from ``origin``.
        session, store, max_bytes, parser_timeout_s, parser_memory_mb: as for ``intake_file``.

    Returns:
        The outcome.

    Raises:
        StoreError: the git store failed (retry the whole unit of work).
    """
    name = display_name(origin)
    if not data:
        return IntakeResult(None, "refused", "file is empty", [], name)
    if len(data) > max_bytes:
        reason = f"file is {human_size(len(data))}; the limit is {human_size(max_bytes)}"
        return IntakeResult(None, "refused", reason, [], name)
    return _intake(
        session,
        store,
        data,
        name,
        origin_key(key if key is not None else origin),
        max_bytes=max_bytes,
        parser_timeout_s=parser_timeout_s,
        parser_memory_mb=parser_memory_mb,
    )


def _intake(
    session: Session,
    store: GitStore,
    data: bytes,
    name: str,
    key: str,
    *,
    max_bytes: int,
    parser_timeout_s: float,
    parser_memory_mb: int,
    root: Path | None = None,
) -> IntakeResult:
    sha = hashlib.sha256(data).hexdigest()
    previous = current_version(session, key)
    same = versions_with_content(session, sha)
    if previous is not None and previous.id in {s.id for s in same}:
        return _known(previous, name)  # the document at this name already has these bytes
    live = [s for s in same if s.status not in CURRENT_EXCLUDED]
    if live:
        moved = _renamed(live, root) if previous is None else None
        if moved is None:
            return _known(live[0], name)  # a copy of a current document under another name
        return _move(session, moved, name, key)
    source_id = version_id(sha, len(same))  # a revert: these bytes were an earlier, replaced version
    version = _next_version(session, key)
    failure: str | None = None
    try:
        sniffed = sniff(data, name)
        media_type, ext = sniffed.media_type, sniffed.ext
    except Unsupported as exc:
        media_type, ext, failure = UNKNOWN_MEDIA_TYPE, "bin", exc.reason
    slug, raw_path = _store_raw(session, store, data, source_id, name, ext, version)
    text: str | None = None
    title = ""
    if failure is None:
        try:
            doc = parse_in_sandbox(data, media_type, timeout_s=parser_timeout_s, memory_mb=parser_memory_mb)
            text, title = doc.text, doc.title
        except ParseFailed as exc:
            failure = exc.reason
    source = Source(
        id=source_id,
        slug=slug,
        origin=name,
        origin_key=key[:1000],
        title=(title or _title_from_name(name))[:500],
        media_type=media_type,
        size=len(data),
        raw_path=raw_path,
        text=text,
        status="failed" if failure else "pending",
        error=failure,
        version=version,
        previous_id=previous.id if previous is not None else None,
    )
    try:
        with session.begin_nested():
            session.add(source)
            session.flush()
    except IntegrityError:
        raced = session.get(Source, source_id)
        if raced is None:
            raise
        return _known(raced, name)
    status = "new_version" if previous is not None else "new"
    if failure:
        log.info("failed %s (%s): %s", name, source_id[:12], failure, extra={"source_id": source_id})
        return IntakeResult(source_id, "failed", failure, [], name)
    job = enqueue_job(
        session,
        "extract",
        f"extract:{source_id}",
        {"source_id": source_id, "previous_id": source.previous_id},
        source_id=source_id,
    )
    log.info("%s %s (%s) -> job %s", status, name, source_id[:12], job.id,
             extra={"source_id": source_id, "job_id": job.id})
    return IntakeResult(source_id, status, None, [job.id], name)


def version_id(sha: str, n: int) -> str:
    """The id of the ``n``-th version row holding the bytes whose sha256 is ``sha`` (``n`` from 0).

    The first is the sha256 itself; a later one (the same bytes arriving again after their version was
    replaced or retracted: a revert) is ``sha256("<sha>:<n>")``, so ids stay unique and 64 hex digits.
    """
    return sha if n == 0 else hashlib.sha256(f"{sha}:{n}".encode()).hexdigest()


def versions_with_content(session: Session, sha: str) -> list[Source]:
    """Every version row holding the bytes whose sha256 is ``sha``, oldest first (see ``version_id``)."""
    found: list[Source] = []
    while (src := session.get(Source, version_id(sha, len(found)))) is not None:
        found.append(src)
    return found


def current_version(session: Session, key: str) -> Source | None:
    """The newest source with origin key ``key`` that is not retracted or replaced, if any."""
    stmt = (
        select(Source)
        .where(Source.origin_key == key[:1000], Source.status.not_in(CURRENT_EXCLUDED))
        .order_by(Source.version.desc(), Source.created_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def deleted_source(session: Session, path: Path, *, root: Path) -> Source | None:
    """The current source of a file that has left the ingest folder ``root``, if any.

    Returns None while the file exists, or when nothing current was ingested under its name (a rename
    already moved its document to the new name).
    """
    if os.path.lexists(path):
        return None
    try:
        relative = Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
    return current_version(session, origin_key(relative))


def _next_version(session: Session, key: str) -> int:
    """One more than the highest version ever recorded under ``key`` (retracted and replaced included)."""
    highest = session.scalar(select(func.max(Source.version)).where(Source.origin_key == key[:1000]))
    return int(highest or 0) + 1


def _renamed(live: list[Source], root: Path | None) -> Source | None:
    """The current source these bytes belong to when its file has left ``root`` (a rename), else None.

    Only a folder ingest can tell: without ``root`` (a lone file, an upload) nothing is known about the
    old name, and the same bytes under a new name are a copy.
    """
    if root is None:
        return None
    for src in live:
        try:
            gone = not os.path.lexists(Path(root) / src.origin)
        except (OSError, ValueError):
            continue
        if gone:
            return src
    return None


def _move(session: Session, src: Source, name: str, key: str) -> IntakeResult:
    """A rename: the document keeps its version (claims, pages, raw copy) and takes the new name."""
    old = src.origin
    src.origin = name
    src.origin_key = key[:1000]
    session.flush()
    job_ids: list[int] = []
    if src.status in ("extracted", "done"):  # its page exists; one still being extracted gets it later
        job = enqueue_job(session, "source_page", f"source_page:{src.id}", {"source_id": src.id},
                          source_id=src.id, requeue_finished=True)
        job_ids.append(job.id)
    log.info("moved %s -> %s (%s)", old, name, src.id[:12])
    return IntakeResult(src.id, "moved", f"renamed from {old!r}", job_ids, name)


def _known(existing: Source, name: str) -> IntakeResult:
    reason = f"same content as {existing.origin!r} (source {existing.id[:12]}, {existing.status})"
    return IntakeResult(existing.id, "known", reason, [], name)


def _store_raw(
    session: Session, store: GitStore, data: bytes, sha: str, name: str, ext: str, version: int
) -> tuple[str, str]:
    """Commit the raw bytes under the first free slug; identical bytes already there are reused.

    Returns:
        ``(slug, raw_path)``.
    """
    base = base_slug(name)
    first = base if version == 1 else f"{base}-v{version}"
    for slug in (first, f"{base}-{sha[:8]}", f"{base}-{sha[:16]}", f"source-{sha[:32]}"):
        if session.scalar(select(Source.id).where(Source.slug == slug)) is not None:
            continue
        raw_path = f"raw/{slug}.{ext}"

        def build(current: Mapping[str, ReadResult], raw_path: str = raw_path) -> dict[str, bytes | None]:
            return {raw_path: data} if current[raw_path].version == ABSENT else {}

        result = store.update([raw_path], build, f"Ingest {name[:200]}", [("Lore-Source", sha)])
        if result.changed or store.read(raw_path).content == data:
            return slug, raw_path
    raise ParseFailed(f"no free name for the raw copy of {name!r}")  # pragma: no cover - 4 distinct slugs


def _title_from_name(name: str) -> str:
    stem = name.rsplit("/", 1)[-1]
    return stem.rsplit(".", 1)[0] if "." in stem.strip(".") else stem
