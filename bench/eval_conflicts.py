"""`lore eval conflicts`: contradiction flagging and entity splitting on the RAMDocs format.

Each record's documents are ingested as separate sources (``doc-<n>.md``, numbered as in the record) into
a fresh wiki through the real write path (extract, resolve, judge, render). Then:

- the question's entities are the entities whose name or alias occurs in the question (longest match,
  case-insensitive), or, failing that, whose name is close to one of the record's ``disambig_entity``;
- a record is *flagged* when any of them has an open contradiction; gold: it has a ``misinfo`` document;
- a record is *detectable* when a misinformation passage and a correct passage both name the entity and
  contain their answers (computed from the data alone): only there can a reader of the documents see
  the disagreement;
- per pair: an open dispute between a claim of a misinformation passage and one of a correct passage is
  a true positive pair; any other open dispute is a false one.

``--sample N --seed S`` draws a stratified sample: equal shares of (one / two or more same-name
entities) x (with / without misinformation). ``--order both`` ingests every record forward and reversed
and reports whether the disputes are the same (``order_invariant``); extraction answers are cached by
prompt hash, so the second order costs only what depends on order (resolution, judge, compose).

``--judge-only`` (:func:`run_judge_only`) scores the pairwise judge alone on gold pairs built from the
records: the gold-answer sentence of a correct passage against the wrong-answer sentence of a
misinformation passage (a conflict), and two correct passages about one entity, that is with the same
gold answer (agreement). Two correct passages with *different* gold answers are about two same-name
entities (``Chayanne (1987 album)`` / ``(1988 album)``); read as one entity, their sentences do disagree,
so they are no gold for the judge. They are scored apart (``same_name``): how often the judge flags what
only entity splitting can keep apart.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import func, select

from ingest.service import intake_bytes
from store.db import make_engine, make_session_factory
from store.git_store import GitStore
from store.migrate import upgrade
from store.models import Alias, Claim, Contradiction, Entity, ModelCall, Source
from synth import judge_flow, slots
from synth.deps import SynthDeps
from synth.errors import InvalidAnswer, OutputTruncated
from synth.grounding import normalise
from synth.prompts import judge as judge_prompt
from synth.runner import drain

ClientFactory = Callable[[Any], Any]  # session factory -> ModelClient
Progress = Callable[[str, int, int], None]
RowHook = Callable[[dict[str, Any]], None]
ORDERS = ("forward", "reverse")


def load_records(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"no RAMDocs-format JSONL at {path}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, r in enumerate(records):
        r.setdefault("_index", i)
    return records[:limit] if limit else records


def stratum(record: dict[str, Any]) -> tuple[int, bool]:
    """(same-name entities, 1 or 2 meaning two or more; has a misinformation passage)."""
    names = min(2, max(1, len(record.get("disambig_entity") or [])))
    return names, any(d.get("type") == "misinfo" for d in record["documents"])


def sample(records: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` records in equal shares of the four strata (a short stratum gives its share to the others)."""
    rng = random.Random(seed)
    strata: dict[tuple[int, bool], list[dict[str, Any]]] = {}
    for r in records:
        strata.setdefault(stratum(r), []).append(r)
    for group in strata.values():
        rng.shuffle(group)
    keys = sorted(strata)
    chosen: list[dict[str, Any]] = []
    while len(chosen) < min(n, len(records)):
        progressed = False
        for k in keys:
            if strata[k] and len(chosen) < n:
                chosen.append(strata[k].pop())
                progressed = True
        if not progressed:
            break
    return sorted(chosen, key=lambda r: r["_index"])


def entity_names(record: dict[str, Any]) -> list[str]:
    """The record's entity names without qualifiers (``Broken Bow, Nebraska`` -> ``Broken Bow``)."""
    out = []
    for d in record.get("disambig_entity") or []:
        base = re.sub(r"\s*\(.*?\)\s*", " ", d).split(",")[0].strip()
        if base:
            out.append(base)
    return out


def _contains(text: str, phrase: str) -> bool:
    return bool(phrase) and normalise(phrase) in normalise(text)


def detectable(record: dict[str, Any]) -> bool:
    """A misinformation passage and a correct passage both name the entity and contain their answers."""
    names = entity_names(record)

    def ok(doc: dict[str, Any]) -> bool:
        text = doc.get("text", "")
        return any(_contains(text, n) for n in names) and _contains(text, str(doc.get("answer", "")))

    docs = record["documents"]
    return any(ok(d) for d in docs if d.get("type") == "misinfo") and any(
        ok(d) for d in docs if d.get("type") == "correct"
    )


class CachedClient:
    """A model client whose extraction answers (a cut-off one too) are cached by prompt hash, shared across orders."""

    def __init__(self, client: Any, cache: dict[str, Any]) -> None:
        self._client = client
        self._cache = cache

    def complete(self, stage: str, messages: list[dict[str, str]], response_model: Any, **kw: Any) -> Any:
        if stage != "extract":
            return self._client.complete(stage, messages, response_model, **kw)
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        if key not in self._cache:
            try:
                self._cache[key] = self._client.complete(stage, messages, response_model, **kw)
            except OutputTruncated as exc:  # a cut answer is an answer too: the same prompt is cut again
                self._cache[key] = exc
        hit = self._cache[key]
        if isinstance(hit, OutputTruncated):
            raise hit
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


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


def run_record(record: dict[str, Any], make_client: ClientFactory, *, embedder: Any = None, order: str = "forward",
               cache: dict[str, Any] | None = None, chunk_tokens: int = 1200) -> dict[str, Any]:
    """Ingest one record's documents into a fresh wiki in ``order`` and read back what was flagged."""
    docs = list(enumerate(record["documents"], start=1))
    if order == "reverse":
        docs.reverse()
    kinds = {f"doc-{i}.md": d.get("type", "?") for i, d in docs}
    with tempfile.TemporaryDirectory(prefix="lore-eval-conflicts-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'lore.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        store = GitStore(root / "wiki")
        store.init()
        client = make_client(factory)
        if cache is not None:
            client = CachedClient(client, cache)
        deps = SynthDeps(factory, store, client, embedder=embedder, catalog_debounce_s=0.0, chunk_tokens=chunk_tokens)
        for i, doc in docs:
            with factory() as s, s.begin():
                intake_bytes(s, store, doc["text"].encode(), f"doc-{i}.md", max_bytes=10_000_000,
                             parser_timeout_s=60, parser_memory_mb=1024)
        drain(deps)
        with factory() as s:
            row = _read_back(s, record, kinds)
        engine.dispose()
    row["order"] = order
    row["source_chars"] = sum(len(d.get("text", "")) for _, d in docs)
    return row


def _read_back(s: Any, record: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    ents = _question_entities(s, record["question"], record.get("disambig_entity", []))
    ids = [e.id for e in ents]
    sources = s.scalars(select(Source)).all()
    origin = {src.id: src.origin.rsplit("/", 1)[-1] for src in sources}
    claims = {c.id: c for c in s.scalars(select(Claim))}
    disputes = []
    for x in s.scalars(select(Contradiction).where(Contradiction.status == "open")):
        a, b = claims.get(x.claim_a), claims.get(x.claim_b)
        if a is None or b is None:
            continue
        da, db = origin.get(a.source_id, "?"), origin.get(b.source_id, "?")
        types = sorted((kinds.get(da, "?"), kinds.get(db, "?")))
        disputes.append({
            "docs": sorted((da, db)), "types": types, "on_question_entity": x.entity_id in ids,
            "true_pair": types == ["correct", "misinfo"], "attribute": a.attr_key, "reason": x.reason,
            "keys": sorted((a.key, b.key)),
        })
    rejections: dict[str, int] = {}
    for src in sources:
        for reason, n in (src.rejections or {}).items():
            rejections[reason] = rejections.get(reason, 0) + int(n)
    on_entity = sorted((c for c in claims.values() if c.entity_id in ids), key=lambda c: c.id)
    pairs = judge_flow.pairs_of(s, {c.id for c in on_entity})
    calls = s.execute(
        select(ModelCall.stage, func.count(), func.sum(ModelCall.prompt_tokens), func.sum(ModelCall.completion_tokens))
        .group_by(ModelCall.stage)
    ).all()
    return {
        "index": record.get("_index"),
        "question": record["question"],
        "gold_misinfo": any(d.get("type") == "misinfo" for d in record["documents"]),
        "detectable": detectable(record),
        "flagged": any(d["on_question_entity"] for d in disputes),
        "entities_for_name": len(ids),
        "disambig": len(record.get("disambig_entity", [])),
        "sources": len(sources),
        "failed_sources": [f"{origin.get(src.id)}: {src.error}" for src in sources if src.status != "done"],
        "rejections": rejections,
        "disputes": disputes,
        # why a record was (not) flagged: what the ledger holds for the question's entities
        "claims_on_entity": [
            f"{origin.get(c.source_id, '?')} ({kinds.get(origin.get(c.source_id, ''), '?')}) [{c.status}] "
            f"{c.attr_key or '-'} = {c.value or '-'} | {c.text}" for c in on_entity
        ],
        "pairs": [f"{p.kind} {p.verdict or 'pending'} ({p.invalid} invalid): {p.reason}" for p in pairs],
        "model_calls": {stage: int(n) for stage, n, _, _ in calls},
        "tokens": {stage: int((pt or 0) + (ct or 0)) for stage, _, pt, ct in calls},
    }


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    flagged = [r for r in rows if r["flagged"]]
    tp = sum(r["gold_misinfo"] for r in flagged)
    precision = tp / len(flagged) if flagged else 0.0
    det = [r for r in rows if r["gold_misinfo"] and r["detectable"]]
    recall_det = sum(r["flagged"] for r in det) / len(det) if det else 0.0
    misinfo = [r for r in rows if r["gold_misinfo"]]
    recall = sum(r["flagged"] for r in misinfo) / len(misinfo) if misinfo else 0.0
    f1 = 2 * precision * recall_det / (precision + recall_det) if precision + recall_det else 0.0
    clean = [r for r in rows if not r["gold_misinfo"]]
    false_flag: dict[str, float | None] = {}
    for n in ("1", "2"):
        group = [r for r in clean if str(min(2, max(1, r["disambig"]))) == n]
        false_flag[n] = round(sum(r["flagged"] for r in group) / len(group), 3) if group else None
    all_disputes = [d for r in rows for d in r["disputes"]]
    true_pairs = sum(d["true_pair"] for d in all_disputes)
    rejections: dict[str, int] = {}
    for r in rows:
        for reason, n in r["rejections"].items():
            rejections[reason] = rejections.get(reason, 0) + n
    return {
        "records": len(rows),
        "detectable": len(det),
        "with_misinfo": len(misinfo),
        "precision": round(precision, 3),
        "recall_detectable": round(recall_det, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "false_flag_rate": false_flag,
        "entity_split_accuracy": round(sum(r["entities_for_name"] == r["disambig"] for r in rows) / len(rows), 3)
        if rows else None,
        "pairs": {"disputes": len(all_disputes), "true_pairs": true_pairs,
                  "pair_precision": round(true_pairs / len(all_disputes), 3) if all_disputes else None},
        "sources": sum(r["sources"] for r in rows),
        "sources_failed": sum(len(r["failed_sources"]) for r in rows),
        "rejections": rejections,
    }


CHARS_PER_TOKEN = 4.0  # English text; the usual rule for the tokenizers of GLM, Gemma and Qwen


def by_stage(rows: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Model calls and tokens by stage, summed over rows."""
    calls: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for r in rows:
        for stage, n in r["model_calls"].items():
            calls[stage] = calls.get(stage, 0) + n
        for stage, n in r["tokens"].items():
            tokens[stage] = tokens.get(stage, 0) + n
    return calls, tokens


def write_cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Model calls and tokens per 1,000 source tokens by stage, over one order's rows (no cache hits)."""
    source_tokens = sum(r["source_chars"] for r in rows) / CHARS_PER_TOKEN
    calls, tokens = by_stage(rows)
    per = 1000.0 / source_tokens if source_tokens else 0.0
    return {
        "source_tokens_est": round(source_tokens),
        "calls_per_1000": {k: round(v * per, 2) for k, v in sorted(calls.items())},
        "tokens_per_1000": {k: round(v * per) for k, v in sorted(tokens.items())},
        "tokens_per_1000_total": round(sum(tokens.values()) * per),
    }


def _dispute_set(row: dict[str, Any]) -> set[tuple[str, ...]]:
    return {tuple(d["keys"]) for d in row["disputes"]}


def run_eval(path: Path, make_client: ClientFactory, *, limit: int | None = None, sample_n: int | None = None,
             seed: int = 1, order: str = "forward", embedder: Any = None,
             progress: Progress | None = None, on_row: RowHook | None = None) -> dict[str, Any]:
    """Run the eval (module docstring); ``order`` is forward, reverse or both."""
    records = load_records(path)
    records = sample(records, sample_n, seed) if sample_n else records[:limit] if limit else records
    orders = ORDERS if order == "both" else (order,)
    start = time.perf_counter()
    cache: dict[str, Any] = {}
    by_order: dict[str, list[dict[str, Any]]] = {o: [] for o in orders}
    total = len(records) * len(orders)
    step = 0
    for record in records:  # both orders of a record together: a run cut short still compares them
        for o in orders:
            by_order[o].append(run_record(record, make_client, embedder=embedder, order=o, cache=cache))
            if on_row is not None:
                on_row(by_order[o][-1])
            step += 1
            if progress is not None:
                progress(o, step, total)
    rows = [r for o in orders for r in by_order[o]]
    result = score(rows)
    if len(orders) == 2:
        fw, rv = by_order["forward"], by_order["reverse"]
        differ = [f["index"] for f, r in zip(fw, rv, strict=True)
                  if _dispute_set(f) != _dispute_set(r) or f["flagged"] != r["flagged"]]
        result["order_invariant"] = not differ
        result["order_differences"] = differ
        result["orders"] = {o: score(by_order[o]) for o in orders}
    else:
        result["order_invariant"] = None
    calls, tokens = by_stage(rows)
    result["model_calls"] = sum(calls.values())
    result["model_calls_by_stage"] = calls
    result["tokens"] = sum(tokens.values())
    result["tokens_by_stage"] = tokens
    result["write_cost"] = write_cost(by_order[orders[0]])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["sample"] = {"n": sample_n, "seed": seed} if sample_n else {"limit": limit}
    result["rows"] = rows
    return result


# --- the judge alone ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldPair:
    record: int
    conflict: bool
    pair: judge_prompt.Pair
    attr_key: str | None
    same_name: bool = False  # two correct passages about two same-name entities: scored apart


_SENTENCE = re.compile(r"[^.!?]*(?:[.!?](?=\s|$)|$)")


def answer_sentence(text: str, answer: str) -> str | None:
    """The sentence of ``text`` that contains ``answer`` (folded), trimmed to 400 characters."""
    if not _contains(text, answer):
        return None
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        if sentence and _contains(sentence, answer):
            return sentence[:400]
    return None


_QUESTION_ATTR = re.compile(r"^\s*(?:what|who|which|when|where)\s+(?:is|was|are|were)\s+the\s+(.+?)\s+of\s+", re.I)


def question_attribute(question: str) -> str | None:
    """``What is the population of X?`` -> ``population``; None when the question has another shape."""
    m = _QUESTION_ATTR.match(question)
    return m.group(1) if m else None


def gold_pairs(records: list[dict[str, Any]]) -> list[GoldPair]:
    """Conflict and agreement pairs from the records' own passages (module docstring)."""
    out = []
    for r in records:
        names = entity_names(r) or [r["question"]]
        entity = names[0]
        attribute = question_attribute(r["question"])
        attr_key = slots.attribute_key(attribute)
        correct: list[judge_prompt.Side] = []
        wrong: list[judge_prompt.Side] = []
        for i, d in enumerate(r["documents"], start=1):
            sentence = answer_sentence(d.get("text", ""), str(d.get("answer", "")))
            if sentence is None or not any(_contains(d.get("text", ""), n) for n in names):
                continue
            side = judge_prompt.Side(str(d["answer"]), sentence, f"doc-{i}")
            (correct if d.get("type") == "correct" else wrong if d.get("type") == "misinfo" else []).append(side)
        if correct and wrong:
            out.append(GoldPair(r["_index"], True, judge_prompt.Pair(entity, r["question"], correct[0], wrong[0]),
                                attr_key))
        by_answer: list[list[judge_prompt.Side]] = []  # one gold answer, one entity
        for side in correct:
            value = slots.normalize_value(side.value, attr_key)
            group = next((g for g in by_answer
                          if slots.same_value(slots.normalize_value(g[0].value, attr_key), value)), None)
            if group is None:
                by_answer.append([side])
            else:
                group.append(side)
        one_entity = next((sides for sides in by_answer if len(sides) >= 2), None)
        if one_entity is not None:
            out.append(GoldPair(r["_index"], False,
                                judge_prompt.Pair(entity, r["question"], one_entity[0], one_entity[1]), attr_key))
        if len(by_answer) >= 2:
            first, second = by_answer[0][0], by_answer[1][0]
            out.append(GoldPair(r["_index"], False, judge_prompt.Pair(entity, r["question"], first, second),
                                attr_key, same_name=True))
    return out


def _claim(side: judge_prompt.Side, attr_key: str | None) -> Claim:
    value = slots.normalize_value(side.value, attr_key)
    return Claim(id="x", text=side.quote, quote=side.quote, attr_key=attr_key, value=side.value,
                 value_norm=value.norm if value else None, value_type=value.type if value else None)


def run_judge_only(path: Path, client: Any, *, sample_n: int = 100, seed: int = 1,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Score the judge (code decisions, then the model pairwise) on gold pairs; positive = conflict."""
    pairs = gold_pairs(load_records(path))
    rng = random.Random(seed)
    conflicts = [p for p in pairs if p.conflict]
    agrees = [p for p in pairs if not p.conflict and not p.same_name]
    same_names = [p for p in pairs if p.same_name]
    rng.shuffle(conflicts)
    rng.shuffle(agrees)
    rng.shuffle(same_names)
    half = sample_n // 2
    chosen = conflicts[:half] + agrees[: sample_n - min(half, len(conflicts))]
    chosen = chosen[:sample_n]
    rng.shuffle(chosen)
    extra = same_names[: max(1, sample_n // 4)] if same_names else []
    start = time.perf_counter()
    predictions: list[tuple[GoldPair, judge_flow.Decision, bool]] = []
    model_tasks: list[tuple[GoldPair, Claim, Claim]] = []
    for gp in chosen + extra:
        a, b = _claim(gp.pair.a, gp.attr_key), _claim(gp.pair.b, gp.attr_key)
        decided = judge_flow.decide_by_code(a, b, None)
        if decided is not None:
            predictions.append((gp, decided, False))
        else:
            model_tasks.append((gp, a, b))
    size = judge_prompt.MAX_PAIRS_PER_CALL
    invalid = 0
    calls = 0
    for i in range(0, len(model_tasks), size):
        group = model_tasks[i : i + size]
        ctx = judge_prompt.JudgeContext(tuple(gp.pair for gp, _, _ in group))
        answers: dict[int, judge_prompt.PairAnswer] = {}
        calls += 1
        try:
            done = client.complete("judge", judge_prompt.build_messages(ctx), judge_prompt.PairJudgement,
                                   validation_context=judge_prompt.validation_context(ctx))
            answers = {a.pair: a for a in done.value.pairs}
        except (InvalidAnswer, OutputTruncated):  # an invalid answer counts as no answer for its pairs
            pass
        for n, (gp, a, b) in enumerate(group, start=1):
            ans = answers.get(n)
            if ans is None:
                invalid += 1
                predictions.append((gp, judge_flow.Decision("unjudged", None, "no valid answer"), True))
            else:
                predictions.append((gp, judge_flow.verdict(ans, a, b, None), True))
        if progress is not None:
            progress("judge", min(i + size, len(model_tasks)), len(model_tasks))
    apart = [(gp, d, by_model) for gp, d, by_model in predictions if gp.same_name]
    predictions = [row for row in predictions if not row[0].same_name]
    tp = sum(gp.conflict and d.verdict == "disputes" for gp, d, _ in predictions)
    fp = sum(not gp.conflict and d.verdict == "disputes" for gp, d, _ in predictions)
    fn = sum(gp.conflict and d.verdict != "disputes" for gp, d, _ in predictions)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "pairs": len(predictions),
        "conflict_pairs": sum(gp.conflict for gp, _, _ in predictions),
        "agree_pairs": sum(not gp.conflict for gp, _, _ in predictions),
        "available_pairs": {"conflict": len(conflicts), "agree": len(agrees), "same_name": len(same_names)},
        "same_name": {"pairs": len(apart), "flagged": sum(d.verdict == "disputes" for _, d, _ in apart),
                      "flag_rate": round(sum(d.verdict == "disputes" for _, d, _ in apart) / len(apart), 3)
                      if apart else None},
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
        "decided_by_code": sum(not by_model for _, _, by_model in predictions),
        "asked_model": sum(by_model for _, _, by_model in predictions),
        "invalid": invalid,
        "judge_calls": calls,
        "wall_s": round(time.perf_counter() - start, 1),
        "sample": {"n": sample_n, "seed": seed},
        "rows": [
            {"record": gp.record, "gold": "same_name" if gp.same_name else "conflict" if gp.conflict else "agree",
             "verdict": d.verdict, "reason": d.reason, "by_model": by_model, "a": gp.pair.a.value,
             "b": gp.pair.b.value}
            for gp, d, by_model in predictions + apart
        ],
    }
