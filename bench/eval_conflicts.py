"""`lore eval conflicts`: contradiction flagging and entity splitting on the RAMDocs format.

Each record's documents are ingested as separate sources into a fresh wiki through the real write
path (extract, resolve, judge, render). Then:

- the question's entities are the entities whose name or alias occurs in the question (longest match,
  case-insensitive), or, failing that, whose name is close to one of the record's `disambig_entity`;
- "a dispute was flagged" means an open contradiction on any of them;
- gold: the record has a `misinfo` document.

Reported: question-level precision, recall and F1 of flagging; the false-flag rate on records without
misinformation, split by the number of same-name entities (`len(disambig_entity)`); and entity-split
accuracy (entities created for the name == `len(disambig_entity)`).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import func, select

from ingest.service import intake_bytes
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from store.models import Alias, Claim, Contradiction, Entity, ModelCall, Source
from synth.deps import SynthDeps
from synth.grounding import normalise
from synth.runner import drain

ClientFactory = Callable[[Any], Any]  # session factory -> ModelClient


def load_records(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records[:limit] if limit else records


def _question_entities(session: Any, question: str, disambig: list[str]) -> list[Entity]:
    q = normalise(question)
    entities = session.scalars(select(Entity)).all()
    aliases: dict[int, list[str]] = {}
    for a in session.scalars(select(Alias)):
        aliases.setdefault(a.entity_id, []).append(a.norm)
    hits: list[tuple[int, Entity]] = []
    for e in entities:
        for n in [e.norm_name, *aliases.get(e.id, [])]:
            if len(n) >= 3 and re.search(r"(?<!\w)" + re.escape(n) + r"(?!\w)", q):
                hits.append((len(n), e))
                break
    if hits:
        longest = max(length for length, _ in hits)
        # every entity sharing the longest matched name: same name, maybe different things
        names = {e.norm_name for length, e in hits if length == longest}
        return [e for _, e in hits if e.norm_name in names or any(a in names for a in aliases.get(e.id, []))]
    targets = [normalise(d.split(",")[0]) for d in disambig]
    return [e for e in entities if any(fuzz.ratio(e.norm_name, t) >= 85 for t in targets)]


def run_record(record: dict[str, Any], make_client: ClientFactory, *, chunk_tokens: int = 1200) -> dict[str, Any]:
    """Ingest one record's documents into a fresh wiki and read back what was flagged."""
    with tempfile.TemporaryDirectory(prefix="lore-eval-conflicts-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'lore.db'}"
        upgrade(url)
        factory = make_session_factory(make_engine(url))
        store = GitStore(root / "wiki")
        store.init()
        deps = SynthDeps(factory, store, make_client(factory), catalog_debounce_s=0.0, chunk_tokens=chunk_tokens)
        for i, doc in enumerate(record["documents"]):
            with factory() as s, s.begin():
                intake_bytes(s, store, doc["text"].encode(), f"doc-{i + 1}.md", max_bytes=10_000_000,
                             parser_timeout_s=60, parser_memory_mb=1024)
        drain(deps)
        with factory() as s:
            ents = _question_entities(s, record["question"], record.get("disambig_entity", []))
            ids = [e.id for e in ents]
            flagged = bool(ids) and s.scalar(
                select(Contradiction.id).where(Contradiction.entity_id.in_(ids), Contradiction.status == "open")
            ) is not None
            sources = s.scalars(select(Source)).all()
            failed = [src.error for src in sources if src.status != "done"]
            origins = {src.id: src.origin for src in sources}
            on_entity = s.scalars(select(Claim).where(Claim.entity_id.in_(ids)).order_by(Claim.id)).all() if ids else []
            claims = [f"{origins.get(c.source_id, '?')} [{c.status}] {c.text}"
                      + (f" (judge: {c.judgement})" if c.judgement else "") for c in on_entity]
            judge_calls = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.stage == "judge"))
    return {
        "question": record["question"],
        "gold_misinfo": any(d.get("type") == "misinfo" for d in record["documents"]),
        "flagged": flagged,
        "entities_for_name": len(ids),
        "disambig": len(record.get("disambig_entity", [])),
        "failed_sources": failed,
        # why a record was (not) flagged: what the ledger holds for the question's entities
        "claims_on_entity": claims,
        "sources_with_claims_on_entity": len({c.source_id for c in on_entity}),
        "judge_calls": judge_calls,
    }


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(r["flagged"] and r["gold_misinfo"] for r in rows)
    fp = sum(r["flagged"] and not r["gold_misinfo"] for r in rows)
    fn = sum(not r["flagged"] and r["gold_misinfo"] for r in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    clean = [r for r in rows if not r["gold_misinfo"]]
    by_names: dict[str, dict[str, float]] = {}
    for n in sorted({r["disambig"] for r in clean}):
        group = [r for r in clean if r["disambig"] == n]
        rate = sum(r["flagged"] for r in group) / len(group)
        by_names[str(n)] = {"records": len(group), "false_flag_rate": round(rate, 3)}
    split_ok = sum(r["entities_for_name"] == r["disambig"] for r in rows)
    return {
        "records": len(rows),
        "with_misinfo": sum(r["gold_misinfo"] for r in rows),
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "false_flag_rate": round(sum(r["flagged"] for r in clean) / len(clean), 3) if clean else None,
        "false_flag_by_same_name_entities": by_names,
        "entity_split_accuracy": round(split_ok / len(rows), 3) if rows else None,
        "sources_failed": sum(len(r["failed_sources"]) for r in rows),
        # a dispute needs claims from two sources on the question's entity, and the judge asked about them
        "records_with_two_sources_on_entity": sum(r["sources_with_claims_on_entity"] >= 2 for r in rows),
        "judge_calls": sum(r["judge_calls"] for r in rows),
    }


def run_eval(path: Path, make_client: ClientFactory, *, limit: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    records = load_records(path, limit)
    start = time.perf_counter()
    rows = []
    for i, record in enumerate(records, start=1):
        rows.append(run_record(record, make_client))
        if progress is not None:
            progress(i, len(records))
    result = score(rows)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["rows"] = rows
    return result
