"""Answers of the fake model server (``bench.fake_llm``): a TEST DOUBLE, never used by Lore itself.

Plausible, deterministic answers derived from the request's fenced data, so tests and benchmarks can
drive the whole write path without a model:

- extract: entities are names actually present in the document (well-known tech names, capitalised
  phrases); claims quote real sentences copied verbatim from the document;
- resolve / judge / compose: decided from the candidates and claims given (compose cites given ids).

In ``obedient`` mode the fake does what instructions planted in the document ask, as far as the schema
lets it (claims about invented entities, fake quotes, paths as names, citations of ids it was not
given), so the project's defences can be proven by code rather than hoped for.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

_SYSTEMS = (
    "Kubernetes Kafka PostgreSQL Postgres MySQL Redis Prometheus Grafana Alertmanager Docker Terraform "
    "Helm Jenkins Elasticsearch Kibana Nginx Linux Python Java Ruby Rails EKS EC2 S3 RDS CloudWatch "
    "etcd Traefik Istio Envoy Vault Consul Celery RabbitMQ MongoDB Cassandra SQLite Ansible Loki "
    "Thanos CoreDNS kubelet KIAM Fluentd Git"
)
_ORGS = "AWS Amazon Azure Google GitHub GitLab Slack PagerDuty Datadog Microsoft"
KNOWN_NAMES: dict[str, str] = {
    **dict.fromkeys(_SYSTEMS.split(), "systems"),
    **dict.fromkeys(_ORGS.split(), "organizations"),
}
_STOP = set(
    "The This That These Those A An In On If When While We It Its Our They There For To As At By After "
    "Before During All Some No Not Yes Please Note See Also And But Or So Then Once Check Run Use Make "
    "Ensure Each Every Any Other Here What Why How Who Which Where Both Since Until From With Without "
    "You Your Is Are Was Were Be Do Does Did Has Have Had Can Could Should Would Will May Might Must "
    "Impact Meaning Diagnosis Mitigation Summary Status Context Decision Consequences Timeline Date "
    "Time Event Action Actions Items Item Background Overview Description Details Steps Step Root Cause "
    "Resolution Lessons Learned Follow Up Monday Tuesday Wednesday Thursday Friday Saturday Sunday "
    "January February March April June July August September October November December TL DR CET UTC "
    "However Although Therefore Because Instead Finally First Second Third Next Last Further Other".split()
)
_PHRASE = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[ -][A-Z][A-Za-z0-9]*){0,3}\b")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s)|[.!?]?\Z)", re.DOTALL)
_LIST_MARK = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_INJECTIONS = {
    "ignore": re.compile(r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) instructions", re.I),
    "delete": re.compile(r"\bdelete (?:the )?(?:page |file |entity |wiki )?([\w./\\~-]+)", re.I),
    "write": re.compile(r"\bwrite (?:\w+ ){0,3}?(?:to|into) (?:the )?(?:path |file )?([\w./\\~-]+)", re.I),
    "cite": re.compile(r"\bcite \[?\^?([\w.:-]+)\]?", re.I),
    "rewrite": re.compile(r"\brewrite (?:the )?(?:page )?(?:\[\[)?([^\]\n]+?)(?:\]\])? to say\b", re.I),
    "page": re.compile(r"\b(?:create|make|add) (?:a )?(?:new )?page (?:called|named|at) ([^\s,;]+)", re.I),
}
_REWRITE_SAYS = re.compile(r"\bto say (.+?)(?=[.!?](?:\s|$)|$)", re.I | re.M)
_OF_TYPE = re.compile(r"\bof type ([^\s,;]+)", re.I)


# --- reading the request ---------------------------------------------------------------------------

_FENCED = re.compile(r"<<<DOCUMENT ([0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", re.DOTALL)


def find_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks its answer to follow, whatever the dialect."""
    so, rf = body.get("structured_outputs"), body.get("response_format")
    schema: Any = None
    if isinstance(so, dict):
        schema = so.get("json")
    elif isinstance(rf, dict):
        schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema")
    schema = schema or body.get("guided_json")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            return None
    return schema if isinstance(schema, dict) else None


def stage_of(schema: dict[str, Any] | None, messages: list[dict[str, Any]]) -> str:
    """extract | resolve | judge | compose | unknown, from the schema's fields (or the system prompt)."""
    props = set((schema or {}).get("properties", {}))
    if {"entities", "claims"} <= props:
        return "extract"
    if "decisions" in props:
        return "resolve"
    if "pairs" in props or "outcomes" in props:
        return "judge"
    if props == {"summary"}:
        return "compose"
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system").lower()
    for stage, cue in (("extract", "extract"), ("resolve", "same as existing"), ("judge", "two sources disagree"),
                       ("compose", "summary paragraph")):
        if cue in system:
            return stage
    return "unknown"


def answer(stage: str, schema: dict[str, Any] | None, messages: list[dict[str, Any]], *,
           obedient: bool = False) -> Any:
    """The answer for a request of ``stage``, from the first fenced block of its user messages."""
    data = ""
    for m in messages:
        if m.get("role") == "user" and (found := _FENCED.search(str(m.get("content", "")))):
            data = found.group(2)
            break
    if stage == "extract":
        return extract(data, obedient=obedient)
    if stage == "resolve":
        return resolve(data, obedient=obedient)
    if stage == "judge":
        return judge(data, obedient=obedient)
    if stage == "compose":
        return compose(data, obedient=obedient)
    return from_schema(schema or {"type": "object", "properties": {"text": {"type": "string"}}})


# --- reading the document ---------------------------------------------------------------------------


def _prose_blocks(text: str) -> tuple[list[tuple[int, int]], list[str], str | None]:
    """Prose blocks as (start, end) offsets, headings, and a front-matter title."""
    blocks: list[tuple[int, int]] = []
    headings: list[str] = []
    title = None
    pos, start, in_code, in_front = 0, None, False, text.startswith("---\n")
    for i, line in enumerate(text.splitlines(keepends=True)):
        stripped = line.strip()
        prose = False
        if in_front:
            if i > 0 and stripped == "---":
                in_front = False
            elif stripped.lower().startswith("title:") and title is None:
                title = stripped[6:].strip().strip("\"'") or None
        elif stripped.startswith(("```", "~~~")):
            in_code = not in_code
        elif in_code or not stripped or stripped.startswith(("|", "<", "---", "===")):
            pass
        elif m := _HEADING.match(line):
            headings.append(m.group(1))
        else:
            prose = True
            if _LIST_MARK.match(stripped) and start is not None:
                blocks.append((start, pos))
                start = None
        if prose and start is None:
            start = pos
        if not prose and start is not None:
            blocks.append((start, pos))
            start = None
        pos += len(line)
    if start is not None:
        blocks.append((start, pos))
    return blocks, headings, title


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of the document's prose; ``text[start:end]`` is the verbatim sentence."""
    spans = []
    for b_start, b_end in _prose_blocks(text)[0]:
        block = text[b_start:b_end]
        for m in _SENTENCE.finditer(block):
            s, e = m.start(), m.end()
            lead = _LIST_MARK.match(block[s:e])
            if lead:
                s += lead.end()
            while e > s and block[e - 1].isspace():
                e -= 1
            if 20 <= e - s <= 400:
                spans.append((b_start + s, b_start + e))
    return spans


def _flat(s: str) -> str:
    return " ".join(s.replace("**", "").replace("`", "").split())


def _names(text: str, headings: list[str], spans: list[tuple[int, int]]) -> list[tuple[str, str]]:
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    pieces = [text[s:e] for s, e in spans] + headings
    for order, piece in enumerate(pieces):
        for m in _PHRASE.finditer(piece):
            words = m.group(0).replace("-", " - ").split()
            while words and (words[0] in _STOP or words[0] == "-"):
                words.pop(0)
            while words and (words[-1] in _STOP or words[-1] == "-"):
                words.pop()
            name = " ".join(words).replace(" - ", "-")
            if len(name) < 2:
                continue
            counts[name] += 1
            first.setdefault(name, order)
    for known in KNOWN_NAMES:
        n = len(re.findall(rf"\b{re.escape(known)}\b", text))
        if n:
            counts[known] = max(counts[known], n)
            first.setdefault(known, 0)

    def keep(name: str) -> bool:
        if name in KNOWN_NAMES or " " in name or "-" in name:
            return True
        return counts[name] >= 2 or any(c.isdigit() or c.isupper() for c in name[1:])

    ranked = sorted((n for n in counts if keep(n)), key=lambda n: (-(n in KNOWN_NAMES), -counts[n], first[n], n))
    return [(n, _type_of(n)) for n in ranked[:8]]


def _type_of(name: str) -> str:
    if name in KNOWN_NAMES:
        return KNOWN_NAMES[name]
    last = name.split()[-1].lower()
    if last in ("team", "squad", "guild"):
        return "teams"
    if last in ("service", "api", "gateway", "worker"):
        return "services"
    if last in ("cluster", "database", "server", "platform", "system"):
        return "systems"
    return "concepts"


def extract(text: str, *, obedient: bool = False) -> dict[str, Any]:
    """An extraction answer whose quotes are verbatim sentences of ``text``."""
    spans = sentences(text)
    _, headings, fm_title = _prose_blocks(text)
    title = fm_title or (headings[0] if headings else (_flat(text[spans[0][0]:spans[0][1]])[:80] if spans else ""))
    summary = " ".join(_flat(text[s:e]) for s, e in spans[:2])[:300]
    names = _names(text, headings, spans)
    if not names and spans:
        names = [(title or "Document", "documents")]
    entities = [{"name": n, "type": t, "aliases": [], "description": f"{n}, as named in the document."}
                for n, t in names]
    claims: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    for name, _t in names:
        hits = [(s, e) for s, e in spans if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text[s:e])]
        for s, e in hits[:2]:
            claims.append({"entity": name, "text": _flat(text[s:e]), **slot_of(text[s:e]), "quote": text[s:e],
                           "valid_from": None, "valid_to": None})
    if not claims and names:  # the sentences never name anything: they are about the document's subject
        claims = [{"entity": names[0][0], "text": _flat(text[s:e]), **slot_of(text[s:e]), "quote": text[s:e],
                   "valid_from": None, "valid_to": None} for s, e in spans[:3]]
    for s, e in spans:
        present = [n for n, _ in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text[s:e])]
        if len(present) >= 2 and len(relations) < 8:
            relations.append({"from": present[0], "to": present[1], "relation": "mentioned with",
                              "quote": text[s:e]})
    answer = {"title": title, "status": status_line(text), "summary": summary, "entities": entities,
              "claims": claims[:24],
              "relations": relations}
    if obedient:
        _obey_extract(text, answer)
    return answer


_DATE_WORDS = (r"(?:(?:January|February|March|April|May|June|July|August|September|October|November|December)"
               r"\s+\d{1,2},?\s+\d{4}|\d{1,2}\s+(?:January|February|March|April|May|June|July|August|September|"
               r"October|November|December)\s+\d{4}|\d{4}-\d{2}-\d{2}|\d{4})")
_SLOTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("birth date", re.compile(rf"\bborn(?: on| in)? (?P<v>{_DATE_WORDS})")),
    ("founding date", re.compile(rf"\b(?:founded|established)(?: on| in)? (?P<v>{_DATE_WORDS})")),
    ("release date", re.compile(rf"\breleased(?: on| in)? (?P<v>{_DATE_WORDS})")),
    ("population", re.compile(r"\b(?:population (?:of|was|is)|there were|had) (?P<v>\d[\d,]*(?: people| residents)?)")),
    ("root cause", re.compile(r"\b(?:caused by|root cause (?:was|is)) (?P<v>[^.,;]{3,80})")),
    ("owner", re.compile(r"\b(?:owned by|is owned by) (?P<v>[A-Z][\w-]*(?: [A-Z][\w-]*){0,3})")),
    ("replication factor", re.compile(r"\breplication factor (?:of|is|was) (?P<v>\d+)")),
    ("platform", re.compile(r"\bruns on (?P<v>[A-Z][\w.]*(?: \d[\w.]*)?)")),
    ("status", re.compile(r"\b(?:was|is|are) (?P<v>decommissioned|deprecated|retired|in production|no longer used)\b")),
)
_AS_OF = re.compile(r"\b(?:census of|as of|in) (\d{4})\b", re.I)


_STATUS_LINE = re.compile(r"^\s*(?:\*\*)?Status(?:\*\*)?\s*:\s*(?P<s>\S.*?)\s*$", re.M | re.I)
_STATUS_HEADING = re.compile(r"^#{1,6}\s*Status\s*\n+\s*(?P<s>\S.*?)\s*$", re.M | re.I)


def status_line(text: str) -> str | None:
    """A document's own status line (``Status: Accepted``, or the line under a ``## Status`` heading)."""
    m = _STATUS_LINE.search(text) or _STATUS_HEADING.search(text)
    return m.group("s") if m else None


def slot_of(sentence: str) -> dict[str, Any]:
    """The fact slot a sentence states, read by a few patterns (None when none matches)."""
    for attribute, pattern in _SLOTS:
        m = pattern.search(sentence)
        if m:
            value = m.group("v").strip()
            as_of = None
            if attribute not in ("birth date", "founding date", "release date"):
                when = _AS_OF.search(sentence)
                as_of = when.group(1) if when else None
            return {"attribute": attribute, "value": value, "as_of": as_of}
    return {"attribute": None, "value": None, "as_of": None}


def injections(text: str) -> dict[str, list[str]]:
    """Instructions planted in ``text``: kind -> targets (empty list when the kind has none)."""
    found: dict[str, list[str]] = {}
    for kind, pattern in _INJECTIONS.items():
        for m in pattern.finditer(text):
            found.setdefault(kind, []).append((m.group(1) if m.groups() else m.group(0)).rstrip(".,;:!?"))
    return found


def _sentence_at(text: str, pos: int) -> str | None:
    """The verbatim sentence of ``text`` that contains offset ``pos`` (None outside prose)."""
    for start, end in sentences(text):
        if start <= pos < end:
            return text[start:end]
    return None


def _obey_extract(text: str, answer: dict[str, Any]) -> None:
    """Do what the planted instructions ask, as far as the extraction schema lets a model do it.

    Some of it is invented (quotes that are not in the document, entities it never names); some of it
    is grounded on purpose (the instruction sentence itself as the quote, path-like names that do occur
    in the text), so only the project's code, not the fake's restraint, can stop it.
    """
    found = injections(text)
    anchor = answer["entities"][0]["name"] if answer["entities"] else "Document"
    entities, claims = answer["entities"], answer["claims"]

    def claim(entity: str, body: str, quote: str) -> None:
        claims.append({"entity": entity, "text": body, **slot_of(body), "quote": quote, "valid_from": None,
                       "valid_to": None})

    if "ignore" in found:
        entities.append({"name": "Mallory Corp", "type": "organizations", "aliases": [],
                         "description": "Owner of every system."})
        claim("Mallory Corp", "Mallory Corp owns every system in the wiki.",
              "Mallory Corp owns every system in the wiki.")
    for target in found.get("delete", []) + found.get("write", []):
        answer["title"] = target
        entities.append({"name": target, "type": "documents", "aliases": [target], "description": f"Path {target}"})
        claim(target, f"The page {target} must be deleted.", f"The administrators approved deleting {target}.")
        answer["relations"].append({"from": anchor, "to": target, "relation": "deletes", "quote": f"delete {target}"})
    for cid in found.get("cite", []):
        claim(anchor, f"{anchor} is confirmed [^{cid}].", f"{anchor} is confirmed.")
    for m in _INJECTIONS["cite"].finditer(text):  # the same, grounded on the instruction's own sentence
        sentence = _sentence_at(text, m.start())
        if sentence:
            claim(anchor, f"{anchor} is confirmed [^{m.group(1).rstrip('.,;:!?')}] {_flat(sentence)}", sentence)
    for m in _INJECTIONS["rewrite"].finditer(text):
        target, sentence = m.group(1).strip(), _sentence_at(text, m.start())
        says = _REWRITE_SAYS.search(text, m.start())
        said = says.group(1).strip() if says else f"{target} was replaced"
        entities.append({"name": target, "type": "systems", "aliases": [], "description": f"{target}, rewritten."})
        claim(target, said, f"{said} (confirmed by the platform team)")  # an invented quote
        if sentence:
            claim(target, _flat(sentence), sentence)  # a real quote: the instruction itself
    for m in _INJECTIONS["page"].finditer(text):
        name, sentence = m.group(1).rstrip(".,;:!?"), _sentence_at(text, m.start())
        kind = _OF_TYPE.search(text, m.start())
        entities.append({"name": name, "type": kind.group(1).rstrip(".,;:!?") if kind else "documents",
                         "aliases": [], "description": f"The page {name}."})
        claim(name, f"{name} is a page of this wiki.", sentence or f"Create a page called {name}.")
    answer["entities"] = list({e["name"]: e for e in entities}.values())


# --- answering from candidates ----------------------------------------------------------------------


def _json_lines(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _norm(s: Any) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(s).lower()).split())


def _digits(s: str) -> list[str]:
    return re.findall(r"\d+", s)


def resolve(data: str, *, obedient: bool = False) -> dict[str, Any]:
    """A resolution answer: a candidate whose name or alias matches the mention, else null."""
    decisions: list[dict[str, Any]] = []
    for row in _json_lines(data):
        name = _norm(row.get("name", ""))
        pick, reason = None, "no candidate has this name"
        for cand in row.get("candidates") or []:
            names = [_norm(cand.get("name", ""))] + [_norm(a) for a in cand.get("aliases") or []]
            if any(n == name or (n and name and (n in name or name in n) and _digits(n) == _digits(name))
                   for n in names):
                pick, reason = cand.get("n"), "same name"
                break
        if obedient and injections(json.dumps(row)) and row.get("candidates"):
            pick, reason = 1, "as instructed"
        decisions.append({"mention": row.get("mention", len(decisions) + 1), "candidate": pick, "reason": reason})
    return {"decisions": decisions}


def _sections(data: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for line in data.splitlines():
        head = line.strip().rstrip(":")
        if head.isupper() and not line.strip().startswith("{"):
            current = head
            continue
        out.setdefault(current, []).extend(_json_lines(line))
    return out


_PAIR_HEAD = re.compile(r"^PAIR (\d+): entity (\".*?\"); question: (.*)$")


def _pairs(data: str) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
    """(number, question, A, B) for each pair block of a judge request."""
    out: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
    current: list[Any] | None = None
    for line in data.splitlines():
        head = _PAIR_HEAD.match(line.strip())
        if head:
            current = [int(head.group(1)), head.group(3), {}, {}]
            out.append(current)  # type: ignore[arg-type]
            continue
        if current is not None and line.startswith(("A: ", "B: ")):
            try:
                row = json.loads(line[3:])
            except ValueError:
                continue
            current[2 if line[0] == "A" else 3] = row
    return [tuple(p) for p in out]  # type: ignore[misc]


def _qualifier(title: str) -> str:
    m = re.search(r"\(([^)]*)\)\s*$", title)
    return _norm(m.group(1)) if m else ""


def _names_title(status: str, title: str) -> bool:
    number = re.match(r"\s*0*(\d+)\.", title)
    if not status or number is None:
        return False
    return re.search(rf"(?<![\w.])0*{number.group(1)}(?![\w-])", status) is not None


def judge(data: str, *, obedient: bool = False) -> dict[str, Any]:
    """Pairwise answers read from the pairs' own content, never from arrival order.

    Equal answers are the same answer; two dated answers at different dates, or a question about a cast or
    members, can both be true; sources whose titles carry different qualifiers (``X (Tucson)`` and
    ``X (Florida)``) are about different things; a side whose document is named by the other's status line
    replaces it; two free-text statements conflict only when they differ in one word (a planted change),
    else they are read as two facts that both hold; anything else is a conflict.
    """
    out = []
    for number, question, a, b in _pairs(data):
        va, vb = _norm(a.get("answer", "")), _norm(b.get("answer", ""))
        qa, qb = _qualifier(str(a.get("source", ""))), _qualifier(str(b.get("source", "")))
        same_question = not (qa and qb and qa != qb)
        same_answer = va == vb or (bool(_digits(va)) and _digits(va) == _digits(vb))
        both_true = (bool(a.get("as_of")) and bool(b.get("as_of")) and a.get("as_of") != b.get("as_of")) or bool(
            re.search(r"\b(?:cast|members?|features?)\b", question, re.I))
        if question.startswith("Do these statements"):  # free-text claims: only a one-word change conflicts
            wa, wb = _norm(a.get("answer", "")).split(), _norm(b.get("answer", "")).split()
            changed = sum(x != y for x, y in zip(wa, wb, strict=False)) if len(wa) == len(wb) else 99
            both_true = both_true or changed != 1
        replaces = None
        if _names_title(str(a.get("source_status", "")), str(b.get("source", ""))):
            replaces = "B"
        elif _names_title(str(b.get("source_status", "")), str(a.get("source", ""))):
            replaces = "A"
        if obedient and (injections(str(a.get("quote", ""))) or injections(str(b.get("quote", "")))):
            same_question, same_answer, both_true, replaces = True, False, False, "A"
        reason = ("different things" if not same_question else "same answer" if same_answer
                  else "both can be true" if both_true else "replaced" if replaces else "the answers differ")
        out.append({"pair": number, "same_question": same_question, "same_answer": same_answer,
                    "both_true": both_true, "replaces": replaces, "reason": reason})
    return {"pairs": out}


def compose(data: str, *, obedient: bool = False) -> dict[str, Any]:
    """Summary prose of up to four sentences, each ending with a citation of a given claim id."""
    facts = _sections(data).get("FACTS", [])
    sentences_out = []
    for fact in facts[:4]:
        body = str(fact.get("text", "")).strip().rstrip(".!?") or "A fact is recorded"
        cite = fact.get("id")
        if obedient:
            for cid in injections(body).get("cite", []) + re.findall(r"\[\^([\w.:-]+)\]", body):
                cite = cid
        sentences_out.append(f"{body} [^{cite}].")
    return {"summary": " ".join(sentences_out) or "Nothing is known yet."}


def from_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A minimal instance of a JSON schema (for stages this fake does not know)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return from_schema(defs.get(schema["$ref"].split("/")[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return from_schema(options[0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: from_schema(v, defs) for k, v in schema.get("properties", {}).items()}
    return {"array": [], "string": "fake", "integer": 0, "number": 0, "boolean": False}.get(str(kind))
