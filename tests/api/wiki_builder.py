"""A small real wiki for the read-side tests: a git repository of pages rendered by ``wiki.entity_page``
(plus hand-written pages with [[links]], [^claim] footnotes and hostile HTML) and matching ledger rows
in a real SQLite database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory, unit_of_work
from store.git_store import ABSENT, GitStore
from store.models import Alias, Base, Claim, Contradiction, Entity, Link, Page, Source
from wiki.entity_page import ClaimView, ConflictView, EntityView, SourceView, render_entity_page, render_source_page
from wiki.links import page_target

UPDATED = "2024-05-01"

SOURCES = {
    "adr": (
        "platform-adr-7",
        "Platform ADR 7",
        "Kubernetes version 1.29 runs the payments cluster. The Payments API is owned by the Core team. "
        "Deploys of the Payments API happen every Tuesday after the change review.",
    ),
    "incident": (
        "incident-2024-03",
        "Incident 2024-03 postmortem",
        "The Payments API returned 503 errors for 40 minutes because the connection pool was exhausted. "
        "Kubernetes version 1.28 runs the payments cluster at the time of the incident.",
    ),
    "hostile": (
        "hostile-sample",
        "Hostile <b>sample</b>",
        "A document that says <script>alert('q')</script> and other nasty things.",
    ),
    "backups": (
        "backup-runbook",
        "Backup runbook",
        "Backups of the ledger database rotate nightly at 02:00 UTC and are kept for 35 days in cold storage "
        "in the Frankfurt region. Restores are rehearsed every quarter by the on-call engineer.",
    ),
}

#: Sources without a page yet: only their raw chunks can answer (tier 3).
RAW_ONLY = ("backups",)

#: claim id -> (entity key, source key, text, quote)
CLAIMS = {
    "c0k8s129aaaa": ("k8s", "adr", "Kubernetes version 1.29 runs the payments cluster",
                     "Kubernetes version 1.29 runs the payments cluster"),
    "c0k8s128bbbb": ("k8s", "incident", "Kubernetes version 1.28 runs the payments cluster",
                     "Kubernetes version 1.28 runs the payments cluster"),
    "c0payown1111": ("payments", "adr", "The Payments API is owned by the Core team",
                     "The Payments API is owned by the Core team"),
    "c0pay503222": ("payments", "incident",
                    "The Payments API returned 503 errors for 40 minutes because the connection pool was exhausted",
                    "The Payments API returned 503 errors for 40 minutes because the connection pool was exhausted"),
    "c0paydeploy3": ("payments", "adr", "Deploys of the Payments API happen every Tuesday",
                     "Deploys of the Payments API happen every Tuesday after the change review"),
    "c0coreown444": ("core", "adr", "The Core team owns the Payments API",
                     "The Payments API is owned by the Core team"),
    "c0hostile555": ("hostile", "hostile", "The hostile sample says <script>alert('c')</script>",
                     "says <script>alert('q')</script>"),
}  # fmt: skip

ENTITIES = {
    "k8s": ("Kubernetes", "systems", "kubernetes", ["k8s"]),
    "payments": ("Payments API", "services", "payments-api", ["payments service"]),
    "core": ("Core team", "teams", "core-team", []),
    "hostile": ("Hostile Page", "concepts", "hostile-page", []),
}

HOSTILE_PAGE = """---
title: Hostile Page
type: concepts
---
# Hostile Page

<script>window.__xss = 1; alert(1)</script>

<img src="x" onerror="window.__xss = 2">

[click me](javascript:window.__xss=3) and [data link](data:text/html,<script>alert(1)</script>)

<a href="javascript:alert(1)" onclick="window.__xss=4">raw anchor</a>

<iframe src="javascript:alert(1)"></iframe>

See [[Kubernetes]] and [[No Such Page]]. The sample is hostile.[^c0hostile555]

[[javascript:alert(1)|a wikilink to javascript]]

[^c0hostile555]: [[sources/hostile-sample|Hostile sample]]: "says <script>alert('q')</script>"
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class WikiFixture:
    root: Path
    store: GitStore
    session_factory: sessionmaker[Session]
    source_ids: dict[str, str] = field(default_factory=dict)
    entity_ids: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


def _claim_view(cid: str, source_ids: dict[str, str]) -> ClaimView:
    _ent, src, text, quote = CLAIMS[cid]
    slug, title, _ = SOURCES[src]
    return ClaimView(cid, text, quote, source_ids[src], title, page_target(f"wiki/sources/{slug}.md"))


def build_wiki(root: Path) -> WikiFixture:
    """Create the repository, the database and the pages; returns handles to all of them."""
    store = GitStore(root / "wiki", refresh_worktree=False)
    store.init()
    engine = make_engine(f"sqlite:///{root / 'lore.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    fx = WikiFixture(root, store, factory)
    with unit_of_work(factory) as session:
        for key, (slug, title, text) in SOURCES.items():
            sid = sha(text)
            fx.source_ids[key] = sid
            session.add(
                Source(
                    id=sid, slug=slug, origin=f"{slug}.md", origin_key=f"{slug}.md", title=title,
                    media_type="text/markdown", size=len(text), raw_path=f"raw/{slug}.md", text=text,
                    status="done",
                )
            )  # fmt: skip
        session.flush()
        for key, (name, type_, slug, aliases) in ENTITIES.items():
            entity = Entity(name=name, norm_name=name.casefold(), type=type_, slug=slug, revision=1)
            session.add(entity)
            session.flush()
            fx.entity_ids[key] = entity.id
            fx.paths[key] = entity.page_path
            for alias in aliases:
                session.add(Alias(entity_id=entity.id, alias=alias, norm=alias.casefold()))
        for cid, (ent, src, text, quote) in CLAIMS.items():
            status = "disputed" if cid.startswith("c0k8s") else "active"
            session.add(
                Claim(id=cid, entity_id=fx.entity_ids[ent], source_id=fx.source_ids[src], key=sha(cid), text=text,
                      quote=quote, status=status)
            )  # fmt: skip
        session.flush()
        session.add(
            Contradiction(
                entity_id=fx.entity_ids["k8s"], claim_a="c0k8s128bbbb", claim_b="c0k8s129aaaa",
                reason="the sources give different versions",
            )
        )  # fmt: skip
        session.add(
            Link(from_entity_id=fx.entity_ids["payments"], to_entity_id=fx.entity_ids["k8s"], relation="runs on",
                 source_id=fx.source_ids["adr"])
        )  # fmt: skip
        for key, path in fx.paths.items():
            session.add(Page(path=path, kind="entity", entity_id=fx.entity_ids[key], title=ENTITIES[key][0]))
        for key, (slug, title, _text) in SOURCES.items():
            if key in RAW_ONLY:
                continue
            session.add(Page(path=f"wiki/sources/{slug}.md", kind="source", source_id=fx.source_ids[key], title=title))
    _write_pages(fx)
    return fx


def _entity_text(fx: WikiFixture, key: str, claim_ids: list[str], summary: str, previous: str | None) -> str:
    name, type_, slug, aliases = ENTITIES[key]
    claims = [_claim_view(c, fx.source_ids) for c in claim_ids]
    conflicts = []
    if key == "k8s":
        conflicts = [ConflictView(claims[0], claims[1], "the sources give different versions")]
    related = [("Payments API", "services/payments-api")] if key == "k8s" else [("Kubernetes", "systems/kubernetes")]
    view = EntityView(
        fx.entity_ids[key], name, type_, slug, aliases, 1, summary,
        claims=[] if key == "k8s" else claims, conflicts=conflicts, related=related,
    )  # fmt: skip
    return render_entity_page(view, previous, UPDATED).text


def _write_pages(fx: WikiFixture) -> None:
    s = fx.store
    first = {
        fx.paths["k8s"]: _entity_text(fx, "k8s", ["c0k8s129aaaa", "c0k8s128bbbb"], "Kubernetes is the container "
                                      "platform.", None),
    }  # fmt: skip
    fx.commits.append(s.write({p: t.encode() for p, t in first.items()}, dict.fromkeys(first, ABSENT), "Render k8s",
                              [("Lore-Source", fx.source_ids["adr"])]).commit)  # fmt: skip
    k8s_v2 = _entity_text(
        fx, "k8s", ["c0k8s129aaaa", "c0k8s128bbbb"],
        "Kubernetes is the container platform that runs the [[Payments API]] [^c0k8s129aaaa].",
        first[fx.paths["k8s"]],
    )  # fmt: skip
    pages = {
        fx.paths["k8s"]: k8s_v2,
        fx.paths["payments"]: _entity_text(
            fx, "payments", ["c0payown1111", "c0pay503222", "c0paydeploy3"],
            "The Payments API takes card payments; it is owned by the [[Core team]] [^c0payown1111].", None,
        ),
        fx.paths["core"]: _entity_text(fx, "core", ["c0coreown444"], "The Core team runs the platform.", None),
        fx.paths["hostile"]: HOSTILE_PAGE,
    }  # fmt: skip
    for key, (slug, title, _text) in SOURCES.items():
        if key in RAW_ONLY:
            continue
        claims = [_claim_view(c, fx.source_ids) for c, v in CLAIMS.items() if v[1] == key]
        entities = sorted({(ENTITIES[CLAIMS[c.id][0]][0], page_target(fx.paths[CLAIMS[c.id][0]])) for c in claims})
        view = SourceView(fx.source_ids[key], slug, title, f"{slug}.md", f"Summary of {title}.", entities, claims)
        pages[f"wiki/sources/{slug}.md"] = render_source_page(view, None, UPDATED).text
    expected = {p: ABSENT for p in pages if p != fx.paths["k8s"]}
    expected[fx.paths["k8s"]] = s.read(fx.paths["k8s"]).version
    fx.commits.append(s.write({p: t.encode() for p, t in pages.items()}, expected, "Render pages",
                              [("Lore-Source", fx.source_ids["incident"]), ("Lore-Job", "7")]).commit)  # fmt: skip
