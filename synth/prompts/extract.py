"""Extraction prompt: one document (or one chunk of it) -> title, summary, entities, claims, relations.

The answer model's field descriptions are the schema contract sent to the server. The prompt keeps the
stable part (instructions, schema summary, one short example) in the system message so every extraction
call shares the same prefix, and the fenced document comes last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.prompts.fence import FENCE_RULE, fence

ENTITY_TYPES: tuple[str, ...] = (
    "systems", "services", "teams", "people", "concepts", "events",
    "organizations", "places", "documents", "other",
)
EntityType = Literal[
    "systems", "services", "teams", "people", "concepts", "events",
    "organizations", "places", "documents", "other",
]


class ExtractedEntity(BaseModel):
    """A thing the document is about."""

    name: str = Field(description="The entity's name as the document writes it.", min_length=1)
    type: EntityType = Field(description="One of: " + ", ".join(ENTITY_TYPES) + ".")
    aliases: list[str] = Field(default_factory=list, description="Other names the document uses for it.")
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


class Extraction(BaseModel):
    """What the model found in one document."""

    title: str = Field(description="The document's title.")
    summary: str = Field(description="One to three sentences on what the document is about.")
    entities: list[ExtractedEntity] = Field(default_factory=list, description="Things the document is about.")
    claims: list[ExtractedClaim] = Field(default_factory=list, description="Atomic facts with verbatim quotes.")
    relations: list[ExtractedRelation] = Field(
        default_factory=list, description="Relations between entities, with verbatim quotes."
    )


@dataclass(frozen=True)
class ExtractContext:
    """The input of one extraction call: the document text, and which chunk of it this is."""

    text: str
    part: int = 1
    parts: int = 1


_EXAMPLE_DOC = "Team Atlas moved the Billing service from MySQL to PostgreSQL in March 2023."
_EXAMPLE_ANSWER = (
    '{"title": "Billing database migration", "summary": "Billing moved to PostgreSQL in 2023.", '
    '"entities": [{"name": "Billing service", "type": "services", "aliases": ["Billing"], '
    '"description": "The billing backend."}, {"name": "PostgreSQL", "type": "systems", "aliases": [], '
    '"description": "A relational database."}, {"name": "Team Atlas", "type": "teams", "aliases": [], '
    '"description": "The team that owns Billing."}], '
    '"claims": [{"entity": "Billing service", "text": "The Billing service uses PostgreSQL.", '
    '"quote": "moved the Billing service from MySQL to PostgreSQL", "valid_from": "March 2023", '
    '"valid_to": null}], '
    '"relations": [{"from": "Team Atlas", "to": "Billing service", "relation": "migrated", '
    '"quote": "Team Atlas moved the Billing service"}]}'
)

SYSTEM = f"""You read one document and extract knowledge for a wiki. Reply with one JSON object:
- "title": the document's title.
- "summary": 1-3 sentences on what the document is about.
- "entities": list of {{"name", "type", "aliases", "description"}}; type is one of {", ".join(ENTITY_TYPES)}.
- "claims": list of {{"entity", "text", "quote", "valid_from", "valid_to"}}: one atomic fact each; "entity" \
is a name from "entities"; "quote" is copied exactly from the document; dates only if the document gives \
them, else null.
- "relations": list of {{"from", "to", "relation", "quote"}} between two entity names.
State only what the document says. Never invent a quote.
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
