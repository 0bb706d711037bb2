"""Extraction prompt: one document (or one chunk of it) -> title, summary, entities, claims, relations.

The answer model's field descriptions are the schema contract sent to the server. The prompt keeps the
stable part (instructions, schema summary, one short example) in the system message so every extraction
call shares the same prefix, and the fenced document comes last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synth.prompts.fence import FENCE_RULE, fence

ENTITY_TYPES: tuple[str, ...] = (
    "systems", "services", "teams", "people", "concepts", "events",
    "organizations", "places", "documents", "other",
)
EntityType = Literal[
    "systems", "services", "teams", "people", "concepts", "events",
    "organizations", "places", "documents", "other",
]


# Upper bounds on the answer's lists, sent in the schema only: a grammar-constrained server (llama.cpp,
# vLLM) must close the list there, so a small model that would list every line of a list-like document
# (an organ's stops, a changelog) as an entity still reaches its claims within the output limit.
# Validation does not enforce them: a server that ignores them loses nothing.
MAX_ENTITIES = 16
MAX_ALIASES = 5
MAX_CLAIMS = 24
MAX_RELATIONS = 12


class ExtractedEntity(BaseModel):
    """A thing the document is about."""

    name: str = Field(description="The entity's name as the document writes it.", min_length=1)
    type: EntityType = Field(description="One of: " + ", ".join(ENTITY_TYPES) + ".")
    aliases: list[str] = Field(
        default_factory=list, description="Other names the document uses for it.",
        json_schema_extra={"maxItems": MAX_ALIASES},
    )
    description: str = Field("", description="One short sentence saying what it is.")

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, v: Any) -> Any:
        if isinstance(v, str):
            t = v.strip().lower()
            if t in ENTITY_TYPES:
                return t
            if t + "s" in ENTITY_TYPES:
                return t + "s"
            return "other"
        return v


def _require(*names: str) -> Any:
    """A ``json_schema_extra`` hook listing ``names`` as required in the schema sent to the server.

    A grammar-constrained server then always writes those keys (null when there is nothing to say);
    validation keeps them optional, so a server that omits them loses nothing.
    """

    def hook(schema: dict[str, Any]) -> None:
        required = schema.setdefault("required", [])
        for name in names:
            if name not in required:
                required.append(name)
        order = list(schema.get("properties", {}))
        required.sort(key=lambda n: order.index(n) if n in order else len(order))

    return hook


class ExtractedClaim(BaseModel):
    """One atomic fact the document states about one entity, as a fact slot (DESIGN section 1)."""

    model_config = ConfigDict(json_schema_extra=_require("attribute", "value", "as_of"))

    entity: str = Field(description="The name of the entity, exactly as in `entities`.", min_length=1)
    text: str = Field(description="One self-contained statement of the fact.", min_length=1)
    attribute: str | None = Field(
        None, description="What the fact answers about the entity: a short noun phrase (birth date, population, "
        "root cause, status, owner)."
    )
    value: str | None = Field(None, description="The answer, as the document words it (copied).")
    as_of: str | None = Field(None, description="The date or period the value refers to, if the document says.")
    quote: str = Field(
        description="The words of the document that state it, copied character for character.", min_length=1
    )
    valid_from: str | None = Field(
        None, description="Only for a state that changes: the date from which it holds, if the document says."
    )
    valid_to: str | None = Field(
        None, description="Only for a state that changes: the date until which it held, if the document says."
    )

    @field_validator("attribute", "value", "as_of", "valid_from", "valid_to", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        if isinstance(v, str) and (not v.strip() or v.strip().lower() in ("null", "none", "n/a", "unknown")):
            return None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        return v


class ExtractedRelation(BaseModel):
    """A relation between two entities that the document states."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    from_: str = Field(alias="from", description="Name of the first entity, as in `entities`.")
    to: str = Field(description="Name of the second entity, as in `entities`.")
    relation: str = Field(description="A short verb phrase, e.g. `depends on`, `owned by`.")
    quote: str = Field(description="The words of the document that state it, copied exactly.")


def _ask_for_status(schema: dict[str, Any]) -> None:
    """List ``status`` as required in the schema sent to the server, right after ``title``.

    A grammar-constrained server then always writes the key (null when there is no status) where a
    document usually states it, near the top; validation keeps it optional for servers that omit it.
    """
    required = schema.setdefault("required", [])
    if "status" not in required:
        required.insert(1 if "title" in required else 0, "status")


_MD_LINK = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])?")


def status_text(title: str, status: str) -> str:
    """The claim text for a document's own status line: ``Status of <title>: <status>``.

    Markdown links (inline, reference or cut short) keep their label; emphasis marks and leading
    symbols (status emoji) go.
    """
    label = " ".join(_MD_LINK.sub(r"\1", status).replace("*", "").replace("`", "").split())
    label = re.sub(r"^[^\w(\[]+", "", label)
    return f"Status of {' '.join(title.split())}: {label}"


class Extraction(BaseModel):
    """What the model found in one document.

    Every field is asked for, so a grammar-constrained server generates them in this order. ``status``
    comes early, where documents state it. The summary comes last: free prose is where a small model
    most often breaks the JSON (an unescaped double quote ends the string early), and by then the
    entities and claims are already out.

    A stated status (an ADR's "Superseded by 036", an RFC's "Rejected") is a fact about the document
    itself: validation adds it as a claim about an entity named after the title (type ``documents``),
    quoting the status line, so supersession and rejection reach the ledger even when the model lists
    no such claim. Grounding still checks that the title and the status occur in the source.
    """

    model_config = ConfigDict(json_schema_extra=_ask_for_status)

    title: str = Field(description="The document's title.")
    status: str | None = Field(
        None,
        description="The document's own status line (e.g. accepted, rejected, deprecated, superseded by "
        "another document), copied exactly; null if it states none.",
    )
    entities: list[ExtractedEntity] = Field(
        description="Things the document is about.", json_schema_extra={"maxItems": MAX_ENTITIES}
    )
    claims: list[ExtractedClaim] = Field(
        description="Atomic facts with verbatim quotes.", json_schema_extra={"maxItems": MAX_CLAIMS}
    )
    relations: list[ExtractedRelation] = Field(
        description="Relations between entities, with verbatim quotes.",
        json_schema_extra={"maxItems": MAX_RELATIONS},
    )
    summary: str = Field(description="One to three sentences on what the document is about.")

    @model_validator(mode="after")
    def _status_is_a_claim(self) -> Extraction:
        status, title = (self.status or "").strip(), self.title.strip()
        if not status or not title:
            return self
        key = title.casefold()
        if not any(key in (e.name.strip().casefold(), *(a.strip().casefold() for a in e.aliases))
                   for e in self.entities):
            self.entities.append(ExtractedEntity(name=title, type="documents", description="This document."))
        if not any(c.quote.strip() == status for c in self.claims):
            self.claims.insert(0, ExtractedClaim(entity=title, text=status_text(title, status), quote=status,
                                                  attribute="status", value=status, as_of=None,
                                                  valid_from=None, valid_to=None))
        for c in self.claims:  # the model's own claim of the status line is the same slot
            if c.quote.strip() == status and not c.attribute:
                c.attribute, c.value = "status", c.value or status
        return self


@dataclass(frozen=True)
class ExtractContext:
    """The input of one extraction call: the document text, and which chunk of it this is."""

    text: str
    part: int = 1
    parts: int = 1


_EXAMPLE_DOC = (
    "# 7. Billing database\nDate: 2023-03-01\nStatus: Superseded by [12. Billing storage](012-storage.md)\n"
    "Team Atlas moved the Billing service from MySQL to PostgreSQL in March 2023."
)
_EXAMPLE_ANSWER = (
    '{"title": "7. Billing database", "status": "Superseded by [12. Billing storage](012-storage.md)", '
    '"entities": [{"name": "Billing service", "type": "services", "aliases": [], "description": "The billing '
    'backend."}, {"name": "Team Atlas", "type": "teams", "aliases": [], "description": "A team."}], '
    '"claims": [{"entity": "Billing service", "text": "The Billing service uses PostgreSQL since March 2023.", '
    '"attribute": "database", "value": "PostgreSQL", "as_of": null, '
    '"quote": "moved the Billing service from MySQL to PostgreSQL in March 2023", "valid_from": "March 2023"}, '
    '{"entity": "Team Atlas", "text": "Team Atlas migrated the Billing service.", "attribute": "migrated", '
    '"value": "the Billing service", "as_of": "March 2023", "quote": "Team Atlas moved the Billing service"}], '
    '"relations": [{"from": "Team Atlas", "to": "Billing service", "relation": "migrated", '
    '"quote": "Team Atlas moved the Billing service"}], '
    '"summary": "Decision 7: Billing moved to PostgreSQL; decision 12 superseded it."}'
)

_EXAMPLE_DOC_2 = (
    "Lake Varna is a town in Ohio. As of the census of 2010, it had 2,114 residents. "
    "It was founded by Anna Varn (born 3 May 1820) in 1851."
)
_EXAMPLE_ANSWER_2 = (
    '{"title": "Lake Varna", "status": null, "entities": [{"name": "Lake Varna", "type": "places", "aliases": [], '
    '"description": "A town in Ohio."}, {"name": "Anna Varn", "type": "people", "aliases": [], "description": '
    '"Founder of Lake Varna."}], "claims": [{"entity": "Lake Varna", "text": "Lake Varna had 2,114 residents in '
    '2010.", "attribute": "population", "value": "2,114 residents", "as_of": "2010", "quote": "As of the census '
    'of 2010, it had 2,114 residents"}, {"entity": "Lake Varna", "text": "Lake Varna was founded in 1851.", '
    '"attribute": "founding date", "value": "1851", "as_of": null, "quote": "founded by Anna Varn (born 3 May '
    '1820) in 1851"}, {"entity": "Anna Varn", "text": "Anna Varn was born on 3 May 1820.", "attribute": '
    '"birth date", "value": "3 May 1820", "as_of": null, "quote": "Anna Varn (born 3 May 1820)"}], '
    '"relations": [{"from": "Anna Varn", "to": "Lake Varna", "relation": "founded", "quote": "founded by Anna '
    'Varn"}], "summary": "Lake Varna is a town in Ohio founded in 1851."}'
)

SYSTEM = f"""You read one document and extract knowledge for a wiki. Reply with one JSON object:
- "title": the document's title.
- "status": the document's own status line if it has one (proposed, accepted, rejected, deprecated, \
superseded by another document...), copied exactly; else null.
- "entities": list of {{"name", "type", "aliases", "description"}}; type is one of {", ".join(ENTITY_TYPES)}.
- "claims": list of {{"entity", "text", "attribute", "value", "as_of", "quote"}}: one atomic fact each, never \
repeated for several entities; "entity" is a name from "entities"; "attribute" is what the fact answers \
(a short noun phrase: birth date, population, root cause, owner, status); "value" is the answer, copied \
from the document; "as_of" is the date or year the value refers to (a census year, the date of an \
event) if the document says, else null; "quote" is a short phrase copied exactly from the document that \
contains the value. Only for a state that changes, add "valid_from" / "valid_to" when the document says.
- "relations": list of {{"from", "to", "relation", "quote"}} between two entity names.
- "summary": 1-3 sentences on what the document is about.
Give every fact the document states: usually 5 to 15 claims, each with its own quote.
State only what the document says. Never invent a quote. No " character inside a string.
{FENCE_RULE}

Example document:
{_EXAMPLE_DOC}
Example answer:
{_EXAMPLE_ANSWER}

Example document:
{_EXAMPLE_DOC_2}
Example answer:
{_EXAMPLE_ANSWER_2}"""


def build_messages(ctx: ExtractContext) -> list[dict[str, str]]:
    """The extraction prompt: stable instructions first, the fenced document last.

    Args:
        ctx: the document text and its chunk position.

    Returns:
        Chat messages for ``ModelClient.complete("extract", ..., Extraction)``.
    """
    where = f" (part {ctx.part} of {ctx.parts})" if ctx.parts > 1 else ""
    user = f"Extract from this document{where}.\n{fence(ctx.text)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
