"""Prompt injection end to end: hostile documents against a model that obeys them.

Honest sources build a wiki first. Then each hostile document of ``tests/fixtures/injection`` goes
through the write path while the fake model server runs in ``obedient`` mode: it invents entities and
quotes, names paths as entities and titles, asks to supersede other sources' claims, cites claim ids it
was never given. The defence must be the code's (DESIGN section 3, "least privilege for the model"):

- the commits made for a hostile source touch only paths the code assigns: its raw file, its source
  page, the catalog pages, and pages of entities whose names the document itself contains;
- nothing is deleted, and no path leaves ``raw/`` or ``wiki/`` (no ``..``, no dot-folders);
- every claim in the ledger has a quote that occurs verbatim in its own source;
- claims of other sources keep their text, quote and source; their status can only move on pages of
  entities the hostile document names, and retracting the hostile sources restores it exactly;
- no page cites (as a live footnote) a claim that is not on that page.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sqlalchemy import select

from store.models import Alias, Claim, Entity, Link, Source
from synth.lifecycle import request_retraction

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "injection"
HOSTILE = ("ignore-and-delete.md", "rewrite-other-pages.md", "cite-unread-sources.md", "paths-as-names.md")
HONEST = (
    "ops/dfds-postmortems/docs/PM2022-003 - Two Kuberneste nodes were down.md",
    "ops/dfds-postmortems/docs/PM2020-008 - Alcide admission causing Kubernetes timeouts.md",
    "ops/dfds-postmortems/docs/PM2022-007 - Kafka metrics stopped being exported to Prometheus.md",
)
CATALOG = {"wiki/index.md", "wiki/log.md", "wiki/contradictions.md"}
SAFE_PATH = re.compile(r"^(?:raw|wiki)(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)+$")
LIVE_FOOTNOTE = re.compile(r"(?<!\\)\[\^([^\]\s]+)\](?!:)")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _claims(session) -> dict[str, tuple[int, str, str, str, str, str | None]]:
    return {c.id: (c.entity_id, c.source_id, c.text, c.quote, c.status, c.superseded_by)
            for c in session.scalars(select(Claim))}


def _names(session) -> dict[int, tuple[str, set[str]]]:
    aliases: dict[int, set[str]] = {}
    for a in session.scalars(select(Alias)):
        aliases.setdefault(a.entity_id, set()).add(a.alias)
    return {e.id: (e.name, aliases.get(e.id, set())) for e in session.scalars(select(Entity))}


def _mentions(text: str, names: tuple[str, set[str]]) -> bool:
    low = text.lower()
    return any(n.strip() and n.strip().lower() in low for n in (names[0], *names[1]))


def _files_outside_repo(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if "wiki" not in p.relative_to(root).parts[:1] and not p.name.startswith("lore.db")}


def test_hostile_documents_change_only_what_the_code_assigns(wiki, shared_data, tmp_path):
    repo = wiki.deps.store.root
    # an honest fact the hostile "rewrite" instruction contradicts (same entity, same slot)
    status_doc = tmp_path / "cluster-status.md"
    status_doc.write_text("# Cluster status\n\nKubernetes is in production in every region we run.\n")
    honest = wiki.ingest(*(shared_data / name for name in HONEST), status_doc)
    wiki.run()
    with wiki.deps.session_factory() as s:
        assert {s.get(Source, sid).status for sid in honest} == {"done"}
        honest_claims = _claims(s)
        k8s = s.scalar(select(Entity).where(Entity.name == "Kubernetes"))
        assert k8s is not None, "the honest sources should give Kubernetes a page"
        real_claim = s.scalar(select(Claim.id).where(Claim.entity_id == k8s.id).limit(1))
    assert honest_claims

    wiki.fake.configure(mode="obedient")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside_before = _files_outside_repo(tmp_path)
    hostile: list[str] = []
    for name in HOSTILE:
        text = (FIXTURES / name).read_text(encoding="utf-8").replace("{claim}", real_claim)
        (inbox / name).write_text(text, encoding="utf-8")
        with wiki.deps.session_factory() as s:
            names_before = _names(s)
        head_before = wiki.deps.store.head()
        tree_before = set(_git(repo, "ls-tree", "-r", "--name-only", head_before).splitlines())
        [sid] = wiki.ingest(inbox / name)
        hostile.append(sid)
        outcomes = wiki.run()
        assert outcomes.get("dead", 0) == 0, (name, outcomes)
        head_after = wiki.deps.store.head()

        with wiki.deps.session_factory() as s:
            src = s.get(Source, sid)
            assert src.status == "done", (name, src.status, src.error)
            mine = list(s.scalars(select(Claim).where(Claim.source_id == sid)))
            linked = {e for link in s.scalars(select(Link).where(Link.source_id == sid))
                      for e in (link.from_entity_id, link.to_entity_id)}
            allowed = {src.raw_path, f"wiki/sources/{src.slug}.md", *CATALOG}
            for entity_id in {c.entity_id for c in mine} | linked:
                entity = s.get(Entity, entity_id)
                known = names_before.get(entity_id)
                # An entity this source created, or one it names by a name the wiki had before it came.
                if known is None or _mentions(text, known):
                    allowed.add(entity.page_path)
            for claim in mine:
                assert claim.quote in text, (name, claim.quote)
                assert _mentions(text, _names(s)[claim.entity_id]), (name, claim.text)
            assert not s.scalar(select(Entity.id).where(Entity.name == "Mallory Corp")), "an invented entity"

        changes = [line.split("\t") for line in _git(repo, "diff", "--name-status", "--no-renames",
                                                      head_before, head_after).splitlines()]
        assert changes, f"{name}: the source changed nothing at all"
        for status, path in changes:
            assert status in ("A", "M"), f"{name}: {status} {path}"  # nothing is ever deleted
            assert SAFE_PATH.match(path), f"{name}: unsafe path {path!r}"
            assert ".." not in path.split("/")
            assert path in allowed, f"{name} changed {path}, which the code never assigned to it"
        assert tree_before <= set(_git(repo, "ls-tree", "-r", "--name-only", head_after).splitlines())

    # Nothing was written next to the repository (../../etc/passwd and friends).
    assert _files_outside_repo(tmp_path) == outside_before | {"inbox", *(f"inbox/{n}" for n in HOSTILE)}
    assert not (tmp_path.parent / "etc").exists()

    with wiki.deps.session_factory() as s:
        after = _claims(s)
        names = _names(s)
        texts = {src.id: src.text or "" for src in s.scalars(select(Source))}
        hostile_claims = {cid for cid, row in after.items() if row[1] in hostile}
        hostile_text = "\n".join(texts[sid] for sid in hostile)
        for cid, row in after.items():
            source_id, quote = row[1], row[3]
            assert quote.strip(), cid
            assert quote in texts[source_id], (cid, quote)  # every claim has a real quote
        moved = 0
        for cid, (entity_id, source_id, text, quote, status, _by) in honest_claims.items():
            now = after[cid]
            assert now[:4] == (entity_id, source_id, text, quote), cid  # never rewritten
            assert now[4] != "retracted", cid
            if now[4] != status:  # only a hostile claim on a page the hostile text names can move it
                moved += 1
                assert _mentions(hostile_text, names[entity_id]), (cid, names[entity_id])
                assert now[5] in hostile_claims or now[4] == "disputed", (cid, now)
        pages = {e.page_path: e.id for e in s.scalars(select(Entity))}
    # the obedient judge asked to replace the honest status; without dates or a status line naming it, code
    # turns that into a dispute: the honest claim is disputed, never superseded
    assert moved, "the obedient judge should have tried to supersede an honest claim (the test lost its teeth)"

    for path, entity_id in pages.items():
        current = wiki.deps.store.read(path).content
        if current is None:
            continue
        shown = {cid for cid, row in after.items() if row[0] == entity_id}
        cited = set(LIVE_FOOTNOTE.findall(current.decode()))
        assert cited <= shown, (path, cited - shown)

    # The hostile sources' effects are exactly reversible: retract them and the honest ledger is back.
    with wiki.deps.session_factory() as s, s.begin():
        for sid in hostile:
            request_retraction(s, sid)
    wiki.run()
    with wiki.deps.session_factory() as s:
        restored = _claims(s)
    assert {cid: restored[cid] for cid in honest_claims} == honest_claims
