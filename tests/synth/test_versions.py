"""Document versions over a real-looking history, with the fake model server.

One decision record is rewritten in place in an ingest folder, the way a repository's history replays
into it commit by commit: a second version, a version the model finds nothing grounded in (it fails),
a revert to the first version, a rename, a third text, and a revert (across the rename) to the second.
At every step the pages at git HEAD must cite only the newest version's claims, and only those claims
are active in the ledger.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from ingest.service import intake_file, version_id
from store.models import Claim, Job, ModelCall, Source
from synth.lifecycle import older_versions
from synth.service import run_job
from wiki.page import parse_page

FOLDER = "in"

# Each version states the Ledger Service's store and its owner; the fake model quotes these sentences.
V_A = (
    "# ADR 1: ledger storage\n\n"
    "The Ledger Service keeps account balances in PostgreSQL.\n"
    "The Ledger Service is owned by the Payments Team.\n"
)
V_B = (
    "# ADR 1: ledger storage\n\n"
    "The Ledger Service keeps account balances in CockroachDB.\n"
    "The Ledger Service is owned by the Platform Team.\n"
)
V_C = (
    "# ADR 1: ledger storage\n\n"
    "The Ledger Service keeps account balances in FoundationDB.\n"
    "The Ledger Service is owned by the Storage Guild.\n"
)
# Over 400 characters with no prose sentence (a table): the model yields no grounded claim. The version
# still becomes the current one (`done`, with a warning saying why it adds no facts) and its text stays
# searchable; the older version's facts go, because the document no longer says them.
V_FAILS = "# ADR 1: ledger storage\n\n| option | cost | risk |\n|---|---|---|\n" + "".join(
    f"| option-{i} | {i * 10} units | level {i % 3} |\n" for i in range(24)
)

UNIQUE = {  # a phrase only that version says
    "A": ("PostgreSQL", "Payments Team"),
    "B": ("CockroachDB", "Platform Team"),
    "C": ("FoundationDB", "Storage Guild"),
}


def _intake(wiki, path: Path, folder: Path) -> tuple[str, str | None]:
    with wiki.deps.session_factory() as session, session.begin():
        r = intake_file(session, wiki.deps.store, path, root=folder, max_bytes=10_000_000,
                        parser_timeout_s=60, parser_memory_mb=1024)
    return r.status, r.source_id


def _ingest(wiki, path: Path, folder: Path) -> tuple[str, str | None]:
    done = _intake(wiki, path, folder)
    wiki.run()
    return done


def _head_pages(wiki) -> dict[str, str]:
    store = wiki.deps.store
    paths = [p for p in store.list("wiki/") if p.endswith(".md")]
    return {p: r.content.decode() for p, r in store.read_many(paths).items() if r.content is not None}


def _entity_pages(pages: dict[str, str]) -> dict[str, str]:
    generated = ("wiki/index.md", "wiki/log.md", "wiki/contradictions.md")
    return {p: t for p, t in pages.items() if p not in generated and not p.startswith("wiki/sources/")}


def _cited(text: str) -> set[str]:
    return set(re.findall(r"\[\^(c[0-9a-f]{11})\]", text))


def _check_only_current(wiki, current_id: str, says: str) -> None:
    """Only ``current_id``'s claims are active, and they are exactly what the pages at HEAD cite."""
    pages = _head_pages(wiki)
    entity_pages = _entity_pages(pages)
    assert entity_pages, sorted(pages)
    with wiki.deps.session_factory() as s:
        active = s.scalars(select(Claim).where(Claim.status == "active")).all()
        assert active
        assert {c.source_id for c in active} == {current_id}, [(c.source_id[:8], c.text) for c in active]
        cited = set().union(*(_cited(t) for t in entity_pages.values()))
        assert cited == {c.id for c in active}
        live = s.scalars(select(Source).where(Source.status.not_in(("replaced", "retracted", "failed")))).all()
        assert [x.id for x in live] == [current_id], [(x.id[:8], x.version, x.status) for x in live]
        src = s.get(Source, current_id)
        assert src.status == "done"
        assert not s.scalars(select(Job).where(Job.state.in_(("queued", "failed", "running")))).all()
    facts = "\n".join(entity_pages.values())
    for version, phrases in UNIQUE.items():
        for phrase in phrases:
            assert (phrase in facts) == (version == says), (version, phrase, says)
    source_pages = [p for p in pages if p.startswith("wiki/sources/")]
    assert source_pages == [f"wiki/sources/{src.slug}.md"]  # replaced versions' pages are gone
    meta = parse_page(pages[source_pages[0]]).meta
    assert meta["lore_status"] == "done"
    assert meta["lore_source"] == current_id


def test_a_history_with_a_factless_version_reverts_and_a_rename_leaves_only_the_newest_version(wiki, tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir()
    doc = folder / "adr-0001.md"

    doc.write_text(V_A)
    status, a1 = _ingest(wiki, doc, folder)
    assert status == "new"
    _check_only_current(wiki, a1, "A")

    doc.write_text(V_B)
    status, b1 = _ingest(wiki, doc, folder)
    assert status == "new_version"
    _check_only_current(wiki, b1, "B")

    doc.write_text(V_FAILS)
    status, bare = _ingest(wiki, doc, folder)
    assert status == "new_version"
    with wiki.deps.session_factory() as s:
        row = s.get(Source, bare)
        assert row.status == "done"
        assert row.error is None
        assert "no claims with a real quote" in (row.warning or "")
        assert row.previous_id == b1
        assert s.get(Source, b1).status == "replaced"
        assert not s.scalars(select(Claim).where(Claim.status == "active")).all()
        slug = row.slug
    pages = _head_pages(wiki)
    assert "no claims with a real quote" in pages[f"wiki/sources/{slug}.md"]  # the warning is on its page
    facts = "\n".join(_entity_pages(pages).values())
    assert not any(p in facts for phrases in UNIQUE.values() for p in phrases)
    failed = bare

    doc.write_text(V_A)  # a revert: the first version's bytes come back
    status, a2 = _ingest(wiki, doc, folder)
    assert status == "new_version"
    assert a2 == version_id(a1, 1) != a1
    with wiki.deps.session_factory() as s:
        row = s.get(Source, a2)
        assert row.previous_id == failed  # the newest arrival, even though it added no facts
        assert row.version == 4
        assert s.get(Source, failed).status == "replaced"
        assert s.get(Source, b1).status == "replaced"  # replaced through the failed version
        raw_a1, raw_a2 = s.get(Source, a1).raw_path, row.raw_path
    assert wiki.deps.store.read(raw_a2).version == wiki.deps.store.read(raw_a1).version  # the same blob
    _check_only_current(wiki, a2, "A")

    renamed = folder / "decisions" / "0001-ledger-storage.md"
    renamed.parent.mkdir()
    doc.rename(renamed)
    with wiki.deps.session_factory() as s:
        calls = s.scalar(select(func.count(ModelCall.id)))
    status, moved = _ingest(wiki, renamed, folder)
    assert (status, moved) == ("moved", a2)
    with wiki.deps.session_factory() as s:
        row = s.get(Source, a2)
        assert (row.origin, row.version) == ("decisions/0001-ledger-storage.md", 4)
        assert s.scalar(select(func.count(ModelCall.id))) == calls  # a rename asks the model nothing
    assert "decisions/0001-ledger-storage.md" in _head_pages(wiki)[f"wiki/sources/{row.slug}.md"]
    _check_only_current(wiki, a2, "A")

    renamed.write_text(V_C)
    status, c1 = _ingest(wiki, renamed, folder)
    assert status == "new_version"
    _check_only_current(wiki, c1, "C")

    renamed.write_text(V_B)  # a revert across the rename
    status, b2 = _ingest(wiki, renamed, folder)
    assert status == "new_version"
    assert b2 == version_id(b1, 1)
    _check_only_current(wiki, b2, "B")
    with wiki.deps.session_factory() as s:
        chain, sid = [], b2
        while sid:
            row = s.get(Source, sid)
            chain.append((row.version, row.status))
            sid = row.previous_id
    assert chain == [(6, "done"), (5, "replaced"), (4, "replaced"), (3, "replaced"), (2, "replaced"), (1, "replaced")]


def test_the_same_bytes_again_at_the_same_name_are_known(wiki, tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir()
    doc = folder / "adr.md"
    doc.write_text(V_A)
    _, first = _ingest(wiki, doc, folder)
    head = wiki.deps.store.head()
    status, again = _ingest(wiki, doc, folder)
    assert (status, again) == ("known", first)
    copy = folder / "copy.md"
    copy.write_text(V_A)  # the original is still there: a copy, not a rename
    status, same = _ingest(wiki, copy, folder)
    assert (status, same) == ("known", first)
    assert wiki.deps.store.head() == head


def test_a_newer_version_replaces_older_ones_whatever_order_they_finish_in(wiki, tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir()
    doc = folder / "adr.md"
    doc.write_text(V_A)
    _, a = _ingest(wiki, doc, folder)
    ids = []
    for text in (V_B, V_C):  # two versions arrive before either is extracted
        doc.write_text(text)
        ids.append(_intake(wiki, doc, folder)[1])
    b, c = ids
    with wiki.deps.session_factory() as s:
        newest = s.get(Source, c)
        assert {o.id for o in older_versions(s, newest, newest.previous_id)} == {a, b}
        later = s.scalar(select(Job.id).where(Job.key == f"extract:{c}"))
    assert run_job(wiki.deps, later) == "done"  # the newest finishes first
    wiki.run()  # then the older one's job finds it replaced and does nothing
    _check_only_current(wiki, c, "C")
