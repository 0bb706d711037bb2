"""Supersession with the real local model: four MoJ ADRs ingested one after the other, in either order.

ADR 018 ("Dedicated Ingress Controllers") was rejected in favour of 019; ADR 021 ("Multi-cluster") is
superseded by 036. After ingesting 018, 019, 021 and 036 one after the other (and again in reverse order,
with the same extraction answers, so the second run costs only resolution, judging and prose), the
pages must say so
(a cited claim or a History entry) and ``wiki/contradictions.md`` must not list a dispute between
either pair. The assertions are about meaning, never about the model's exact wording.

Slow (many minutes on two CPU cores), and still part of `make test`. The pages and the contradictions
page are printed and written to ``artifacts/moj-adrs/`` so the run log shows what the model produced.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lore.llama_server import LlamaServer
from store.models import Claim, Contradiction, Entity, Source
from synth.lint_service import lint_wiki
from tests.synth.real_model import real_wiki, serve_embedded_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(5400)]

ADRS = ("018-Dedicated-Ingress-Controllers.md", "019-Shared-Ingress-Controllers.md", "021-Multi-cluster.md",
        "036-multi-cluster.md")
SUCCESSIONS = (("021", "036"), ("018", "019"))  # (earlier, later)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Iterator[LlamaServer]:
    yield from serve_embedded_model(tmp_path_factory.mktemp("llama"))


def _stated(claims: list[Claim], word: str, number: str) -> list[Claim]:
    """Claims whose text or quote uses ``word`` (a stem) and names document ``number`` (leading zeros free)."""
    n = re.compile(r"(?<!\d)0*" + number.lstrip("0") + r"(?!\d)")
    return [c for c in claims if word in f"{c.text} {c.quote}".casefold() and n.search(f"{c.text} {c.quote}")]


def _report(capsys, out: Path, name: str, text: str) -> None:
    """Write ``text`` to the artifacts folder and to the terminal (shown in the run log even on success)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / name.replace("/", "__")).write_text(text)
    with capsys.disabled():
        sys.stdout.write(f"\n===== {name} =====\n{text}")


EXTRACTIONS: dict = {}  # shared by both orders


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_moj_adrs_supersession_with_the_real_model(tmp_path, llama, shared_data, artifacts_dir, capsys, order):
    from synth.runner import drain

    wiki = real_wiki(tmp_path, llama, read_s=1800.0, extract_cache=EXTRACTIONS)
    deps, factory, store = wiki.deps, wiki.deps.session_factory, wiki.deps.store
    ids: dict[str, str] = {}
    for name in ADRS if order == "forward" else ADRS[::-1]:  # each read, judged, rendered before the next
        started = time.monotonic()
        (ids[name[:3]],) = wiki.ingest(shared_data / "ops/moj-adrs" / name)
        outcomes = drain(deps)
        with capsys.disabled():
            sys.stdout.write(f"\n{name}: {outcomes} in {time.monotonic() - started:.0f}s")

    out = artifacts_dir / "moj-adrs" / order
    shutil.rmtree(out, ignore_errors=True)  # this run's pages only
    with factory() as s:
        sources = {k: s.get(Source, v) for k, v in ids.items()}
        claims = {k: list(s.scalars(select(Claim).where(Claim.source_id == v))) for k, v in ids.items()}
        entities = {e.id: e for e in s.scalars(select(Entity))}
        contradictions = list(s.scalars(select(Contradiction).where(Contradiction.status == "open")))
        by_id = {c.id: c for cs in claims.values() for c in cs}
        ledger = [
            f"{k} {c.status:10} [{entities[c.entity_id].name}] {c.text} | quote: {c.quote} | {c.judgement or ''}"
            for k, cs in claims.items() for c in cs
        ]
        findings = lint_wiki(s, store)
        statuses = {k: (src.status, src.error) for k, src in sources.items()}
    contradictions_md = store.read("wiki/contradictions.md").content.decode()
    pages = {}
    for path in sorted({entities[c.entity_id].page_path for cs in claims.values() for c in cs}):
        content = store.read(path).content
        if content is not None:
            pages[path] = content.decode()
    _report(capsys, out, "ledger.txt", "\n".join(ledger) + "\n")
    for path, text in pages.items():
        _report(capsys, out, path, text)
    _report(capsys, out, "wiki/contradictions.md", contradictions_md)

    assert {k: st for k, (st, _) in statuses.items()} == dict.fromkeys(ids, "done"), statuses
    assert [f for f in findings if f.severity == "error"] == []

    # No open dispute between a document and the one that replaced it, in the ledger or on the page.
    for earlier, later in SUCCESSIONS:
        pair = {ids[earlier], ids[later]}
        crossing = [x for x in contradictions
                    if {by_id[x.claim_a].source_id, by_id[x.claim_b].source_id} == pair
                    if x.claim_a in by_id and x.claim_b in by_id]
        assert crossing == [], (earlier, later, [x.reason for x in crossing])
        for block in contradictions_md.split("[!warning] Sources disagree")[1:]:
            cited = {k for k, src in sources.items() if f"sources/{src.slug}" in block}
            assert {earlier, later} - cited, (earlier, later, block)

    # The pages say that 021 was superseded by 036 and that 018 was rejected in favour of 019: a claim
    # of the earlier ADR states it, and that claim is shown (Facts or History) with its footnote.
    for earlier, later, word in (("021", "036", "supersed"), ("018", "019", "reject")):
        stated = _stated([c for c in claims[earlier] if c.status != "retracted"], word, later)
        assert stated, (earlier, word, later, [c.text for c in claims[earlier]])
        shown = [c for c in stated if f"[^{c.id}]" in pages.get(entities[c.entity_id].page_path, "")]
        assert shown, (earlier, [(c.id, entities[c.entity_id].page_path) for c in stated])
