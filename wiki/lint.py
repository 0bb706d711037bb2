"""Checks over page texts and claim data. Pure: the caller reads the pages and the ledger.

Findings (``kind``, severity):

- ``malformed-page`` (warning): a marker or the front matter could not be read; the text is kept.
- ``edited-region`` (warning): a person edited inside a machine region (the next render keeps it in Notes).
- ``uncited-fact`` (error): a bullet of ``facts`` / ``claims`` without a footnote.
- ``uncited-sentence`` (warning): a sentence of ``summary`` prose without a footnote.
- ``unknown-claim`` (error): a footnote that names no claim and is not a person's own footnote.
- ``undefined-footnote`` (error): a ``[^claim]`` reference with no definition on the page.
- ``unquoted-claim`` (error): the page cites a claim whose quote the caller could not find in its source.
- ``broken-link`` (error in a machine region, warning in human text): a wikilink that names no page.
- ``ambiguous-link`` (warning): a wikilink that names several pages equally well.
- ``not-in-index`` / ``no-index`` (error): a page ``wiki/index.md`` does not list, or no index at all.
- ``orphan`` (warning): no other page links to it (the generated catalog pages do not count).
- ``stub`` (warning): an entity page citing fewer than ``min_claims`` claims in its facts.

Checks against what the ledger says now (the caller reads it into plain values):

- ``dispute-stale`` (warning, ``lint_disputes``): a dispute still open more than ``max_age_days`` days.
- ``stale-page`` (``lint_freshness``): an entity page whose cited claims or rendered revision differ from
  the ledger's, or that exists (or is missing) against the ledger. A warning while a render is queued or
  when the page at HEAD is not the blob the last render recorded (a person's commit, or a render that
  landed while the caller read); an error when the page is exactly what the last render recorded and no
  render is queued: the ledger moved without asking for a render, and nothing will bring the page up to date.
- ``catalog-drift`` (warning, ``lint_catalog``): the ``catalog`` region of ``wiki/index.md``,
  ``wiki/log.md`` or ``wiki/contradictions.md`` differs from what the ledger generates now (normal for
  a moment after a change: the catalog job is debounced).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from wiki.catalog import CONTRADICTIONS_PATH, INDEX_PATH, LOG_PATH
from wiki.links import LinkIndex, PageRef
from wiki.markdown import (
    REF_MARK,
    WikiLink,
    extract_footnote_defs,
    extract_footnote_refs,
    extract_wikilinks,
    text_units,
)
from wiki.page import PageDoc, Region, Text, lore_property, parse_page

__all__ = ["Finding", "LedgerPage", "OpenDispute", "lint_catalog", "lint_disputes", "lint_freshness", "lint_pages"]

Severity = Literal["error", "warning"]
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?]\ufffc))\s+(?=\S)")  # after "end." or "end.[^id]"
_REF_RUN = re.compile("\ufffc+")
_CATALOG_PATHS = (INDEX_PATH, LOG_PATH, CONTRADICTIONS_PATH)
_FACT_REGIONS = ("facts", "claims")


@dataclass(frozen=True, order=True)
class Finding:
    """One problem found on one page."""

    severity: Severity
    kind: str
    path: str
    detail: str


@dataclass
class _Page:
    path: str
    doc: PageDoc
    kind: str  # entity | source | catalog | other


def _kind(path: str, meta: Mapping[Any, Any]) -> str:
    if path in _CATALOG_PATHS or meta.get("type") == "catalog":
        return "catalog"
    if lore_property(meta, "entity") is not None:
        return "entity"
    if meta.get("type") == "source" or lore_property(meta, "source") is not None:
        return "source"
    return "other"


def _aliases(meta: Mapping[Any, Any]) -> list[str]:
    aliases = meta.get("aliases")
    if isinstance(aliases, str):
        return [aliases]
    if isinstance(aliases, list):
        return [str(a) for a in aliases if a is not None]
    return []


def _shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.replace(REF_MARK, "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _structure(page: _Page) -> Iterable[Finding]:
    for problem in page.doc.problems:
        yield Finding("warning", "malformed-page", page.path, f"line {problem.line}: {problem.detail}")
    for region in page.doc.regions:
        if region.edited:
            yield Finding("warning", "edited-region", page.path, f"region '{region.name}' was edited by hand")


def _citations(page: _Page) -> Iterable[Finding]:
    if page.kind not in ("entity", "source"):
        return
    for name in _FACT_REGIONS:
        region = page.doc.region(name)
        for unit in text_units(region.content) if region else []:
            if unit.kind == "item" and not unit.refs:
                yield Finding("error", "uncited-fact", page.path, f"{name}: '{_shorten(unit.text)}'")
    summary = page.doc.region("summary") if page.kind == "entity" else None  # a source's summary is not claims
    for unit in text_units(summary.content) if summary else []:
        if unit.kind not in ("paragraph", "item"):
            continue
        sentences: list[str] = []
        for piece in _SENTENCE_END.split(_REF_RUN.sub(REF_MARK, unit.text)):
            if sentences and not piece.replace(REF_MARK, "").strip():
                sentences[-1] += piece  # a reference standing after the full stop belongs to the sentence
            else:
                sentences.append(piece)
        for sentence in sentences:
            if REF_MARK not in sentence and sentence.strip():
                yield Finding("warning", "uncited-sentence", page.path, f"summary: '{_shorten(sentence)}'")


def _footnotes(page: _Page, text: str, claim_ids: Collection[str], unquoted: Collection[str]) -> Iterable[Finding]:
    machine_defs = {d.label for r in page.doc.regions for d in extract_footnote_defs(r.content)}
    human_defs = {d.label for d in extract_footnote_defs(page.doc.human_text())}
    for label in sorted(set(extract_footnote_refs(text)) | machine_defs):
        if label in claim_ids:
            if label not in machine_defs | human_defs:
                yield Finding("error", "undefined-footnote", page.path, f"[^{label}] has no definition")
            if label in unquoted:
                yield Finding("error", "unquoted-claim", page.path, f"[^{label}]: quote not found in its source")
        elif label in machine_defs or label not in human_defs:
            yield Finding("error", "unknown-claim", page.path, f"[^{label}] names no claim")


def _links_by_owner(doc: PageDoc) -> list[tuple[bool, WikiLink]]:
    """Return ``(in a machine region, link)`` for every wikilink of the body."""
    found: list[tuple[bool, WikiLink]] = []
    for part in doc.parts:
        if isinstance(part, Region):
            found += [(True, link) for link in extract_wikilinks(part.content)]
    human = "".join(p.text for p in doc.parts if isinstance(p, Text))
    return found + [(False, link) for link in extract_wikilinks(human)]


def lint_pages(
    pages: Mapping[str, str],
    claim_ids: Collection[str],
    *,
    unquoted: Collection[str] = (),
    min_claims: int = 2,
    index_path: str = INDEX_PATH,
) -> list[Finding]:
    """Check every page and return the findings, sorted.

    Args:
        pages: repository path (``wiki/...md``) -> page text, for every page of the wiki.
        claim_ids: ids of the claims that exist in the ledger (any status).
        unquoted: ids of claims whose quote the caller could not find in their source text.
        min_claims: entity pages citing fewer claims in their facts are stubs.
        index_path: the path of the generated index.

    Returns:
        Findings sorted by severity, kind, path and detail, each once.
    """
    claim_set, unquoted_set = set(claim_ids), set(unquoted)
    parsed = {path: parse_page(text) for path, text in pages.items()}
    entries = {path: _Page(path, doc, _kind(path, doc.meta)) for path, doc in parsed.items()}
    index = LinkIndex(
        PageRef(path, str(doc.meta.get("title") or ""), _aliases(doc.meta)) for path, doc in parsed.items()
    )
    findings: set[Finding] = set()
    inbound: dict[str, set[str]] = {path: set() for path in pages}
    listed: set[str] = set()
    for path, page in sorted(entries.items()):
        findings.update(_structure(page))
        findings.update(_citations(page))
        findings.update(_footnotes(page, pages[path], claim_set, unquoted_set))
        for machine, link in _links_by_owner(page.doc):
            if not link.target:
                continue
            resolved = index.resolve(link.target)
            if resolved is None:
                severity: Severity = "error" if machine else "warning"
                findings.add(Finding(severity, "broken-link", path, f"[[{link.target}]] names no page"))
                continue
            if index.ambiguous(link.target):
                others = ", ".join(index.ambiguous(link.target))
                findings.add(Finding("warning", "ambiguous-link", path, f"[[{link.target}]] names {others}"))
            if path == index_path:
                listed.add(resolved)
            if page.kind != "catalog" and resolved != path:
                inbound[resolved].add(path)
    content = [p for p, page in entries.items() if page.kind != "catalog"]
    if content and index_path not in pages:
        findings.add(Finding("error", "no-index", index_path, "the wiki has pages but no index"))
    for path in sorted(content):
        if index_path in pages and path not in listed:
            findings.add(Finding("error", "not-in-index", path, f"{index_path} does not list this page"))
        if not inbound[path]:
            findings.add(Finding("warning", "orphan", path, "no other page links here"))
        page = entries[path]
        if page.kind == "entity":
            facts = page.doc.region("facts")
            cited = {r for u in text_units(facts.content) for r in u.refs} if facts else set()
            if len(cited & claim_set) < min_claims:
                detail = f"{len(cited & claim_set)} claim(s) cited, fewer than {min_claims}"
                findings.add(Finding("warning", "stub", path, detail))
    return sorted(findings)


# --- checks against the ledger ------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDispute:
    """A dispute the ledger still holds open: two claims about the entity whose page is ``path``."""

    path: str
    claim_a: str
    claim_b: str
    opened: datetime


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def lint_disputes(disputes: Iterable[OpenDispute], *, now: datetime, max_age_days: int) -> list[Finding]:
    """Report disputes left open for more than ``max_age_days`` days (``dispute-stale``).

    Args:
        disputes: the open disputes (naive datetimes are taken as UTC).
        now: the current time (passed in, so a test can hold the clock).
        max_age_days: how long a dispute may stay open before it is reported.

    Returns:
        One warning per stale dispute, sorted.
    """
    findings = set()
    cutoff = _utc(now) - timedelta(days=max_age_days)
    for d in disputes:
        opened = _utc(d.opened)
        if opened < cutoff:
            age = (_utc(now) - opened).days
            a, b = sorted((d.claim_a, d.claim_b))
            detail = f"[^{a}] vs [^{b}] open for {age} days (since {opened:%Y-%m-%d}), more than {max_age_days}"
            findings.add(Finding("warning", "dispute-stale", d.path, detail))
    return sorted(findings)


@dataclass(frozen=True)
class LedgerPage:
    """What the ledger says one entity page should be now.

    Attributes:
        path: the page's repository path.
        claim_ids: the claims the page should cite (shown ones and their history); empty when no claim
            is left to show, so the page should not exist.
        revision: the entity's ledger revision.
        render_queued: a render of the entity is queued, running or waiting to retry.
        as_recorded: the page at HEAD is the blob the last render recorded (both absent counts).
    """

    path: str
    claim_ids: frozenset[str]
    revision: int
    render_queued: bool = False
    as_recorded: bool = True


def _machine_citations(doc: PageDoc) -> set[str]:
    cited: set[str] = set()
    for region in doc.regions:
        cited.update(extract_footnote_refs(region.content))
        cited.update(d.label for d in extract_footnote_defs(region.content))
    return cited


def _some(ids: Iterable[str], limit: int = 3) -> str:
    ordered = sorted(ids)
    shown = ", ".join(f"[^{i}]" for i in ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


def _differences(text: str | None, want: LedgerPage) -> list[str]:
    if text is None:
        return [f"missing at HEAD; the ledger has {len(want.claim_ids)} claim(s) for it"] if want.claim_ids else []
    if not want.claim_ids:
        return ["the ledger has no claim left to show here; the page should be gone"]
    doc = parse_page(text)
    cited = _machine_citations(doc)
    problems = []
    if missing := want.claim_ids - cited:
        problems.append(f"{len(missing)} ledger claim(s) not on the page ({_some(missing)})")
    if extra := cited - want.claim_ids:
        problems.append(f"{len(extra)} claim(s) the ledger no longer shows here ({_some(extra)})")
    revision = lore_property(doc.meta, "revision")
    if not isinstance(revision, int) or revision != want.revision:
        problems.append(f"rendered from revision {revision}, the ledger is at {want.revision}")
    return problems


def lint_freshness(pages: Mapping[str, str], expected: Iterable[LedgerPage]) -> list[Finding]:
    """Report entity pages out of date with the ledger (``stale-page``).

    Args:
        pages: repository path -> page text at HEAD (a path missing here is absent at HEAD).
        expected: what the ledger says each entity page should be.

    Returns:
        One finding per stale page: a warning while a render is queued or when the page at HEAD is not
        the last recorded render; an error otherwise (nothing will bring the page up to date).
    """
    findings = []
    for want in expected:
        problems = _differences(pages.get(want.path), want)
        if not problems:
            continue
        if want.render_queued:
            severity: Severity = "warning"
            problems.append("render queued")
        elif not want.as_recorded:
            severity = "warning"
            problems.append("the page at HEAD is not the last recorded render (a commit since, or one in flight)")
        else:
            severity = "error"
            problems.append("no render queued")
        findings.append(Finding(severity, "stale-page", want.path, "; ".join(problems)))
    return sorted(set(findings))


def _catalog_lines(text: str) -> list[str] | None:
    region = parse_page(text).region("catalog")
    return region.content.splitlines() if region is not None else None


def lint_catalog(pages: Mapping[str, str], expected: Mapping[str, str], *, note: str = "") -> list[Finding]:
    """Report generated pages whose ``catalog`` region differs from a fresh generation (``catalog-drift``).

    Only the machine region is compared: the front matter's ``updated`` date and a person's text around
    the region are not drift.

    Args:
        pages: repository path -> page text at HEAD.
        expected: catalog path -> the page the ledger generates now.
        note: appended to each finding's detail (e.g. that a catalog job is queued).

    Returns:
        One warning per drifted page, sorted.
    """
    findings = []
    suffix = f"; {note}" if note else ""
    for path, fresh in sorted(expected.items()):
        want = _catalog_lines(fresh) or []
        have = _catalog_lines(pages[path]) if path in pages else None
        if have is None:
            where = "missing at HEAD" if path not in pages else "has no catalog region"
            findings.append(Finding("warning", "catalog-drift", path, f"{where}; the ledger generates it{suffix}"))
            continue
        if have == want:
            continue
        lacking, stale = Counter(want) - Counter(have), Counter(have) - Counter(want)
        if not lacking and not stale:
            detail = "the same lines in another order than the ledger's"
        else:
            example = next((line for line in (lacking or stale) if line.strip()), "")
            detail = (f"{sum(lacking.values())} line(s) missing and {sum(stale.values())} out of date against "
                      f"the ledger, e.g. '{_shorten(example)}'")
        findings.append(Finding("warning", "catalog-drift", path, detail + suffix))
    return sorted(findings)
