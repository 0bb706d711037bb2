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


class ExtractedClaim(BaseModel):
    """One atomic fact the document states about one entity."""

    entity: str = Field(description="The name of the entity, exactly as in `entities`.", min_length=1)
    text: str = Field(description="One self-contained statement of the fact.", min_length=1)
    quote: str = Field(
        description="The words of the document that state it, copied character for character.", min_length=1
    )
    valid_from: str | None = Field(None, description="Date from which the fact holds, if the document says.")
    valid_to: str | None = Field(None, description="Date until which the fact held, if the document says.")


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
                                                  valid_from=None, valid_to=None))
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
    '"claims": [{"entity": "Billing service", "text": "The Billing service uses PostgreSQL instead of MySQL.", '
    '"quote": "moved the Billing service from MySQL to PostgreSQL", "valid_from": "March 2023", '
    '"valid_to": null}, {"entity": "Team Atlas", "text": "Team Atlas migrated the Billing service.", '
    '"quote": "Team Atlas moved the Billing service", "valid_from": "March 2023", "valid_to": null}], '
    '"relations": [{"from": "Team Atlas", "to": "Billing service", "relation": "migrated", '
    '"quote": "Team Atlas moved the Billing service"}], '
    '"summary": "Decision 7: Billing moved to PostgreSQL; decision 12 superseded it."}'
)

SYSTEM = f"""You read one document and extract knowledge for a wiki. Reply with one JSON object:
- "title": the document's title.
- "status": the document's own status line if it has one (proposed, accepted, rejected, deprecated, \
superseded by another document...), copied exactly; else null.
- "entities": list of {{"name", "type", "aliases", "description"}}; type is one of {", ".join(ENTITY_TYPES)}.
- "claims": list of {{"entity", "text", "quote", "valid_from", "valid_to"}}: one atomic fact each, never \
repeated for several entities; "entity" is a name from "entities"; "quote" is a short phrase copied \
exactly from the document; "valid_from" and "valid_to" are when the fact became or stopped being true, \
only if the document says, else null.
- "relations": list of {{"from", "to", "relation", "quote"}} between two entity names.
- "summary": 1-3 sentences on what the document is about.
Give every fact the document states: usually 5 to 15 claims, each with its own quote.
State only what the document says. Never invent a quote. No " character inside a string.
{FENCE_RULE}

Example document:
{_EXAMPLE_DOC}
Example answer:
{_EXAMPLE_ANSWER}"""


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
