"""Composition prompt: 1-4 sentences of summary prose for an entity page, every sentence cited.

Each sentence must end with one or more ``[^claim-id]`` footnote references to the claims given. The
answer model checks the form, and (given ``validation_context``) that only given ids are cited, so a
bad answer is repaired once by the client with the exact complaint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from synth.prompts.fence import FENCE_RULE, fence, one_line

CITATION = re.compile(r"\[\^([A-Za-z0-9_.:-]+)\]")
_ENDS_CITED = re.compile(r"(?:\[\^[A-Za-z0-9_.:-]+\]\s*)+[.!?]?\s*$")


@dataclass(frozen=True)
class CitedClaim:
    """A claim that the prose may cite."""

    id: str
    text: str


@dataclass(frozen=True)
class ComposeContext:
    """The entity and its active claims."""

    entity: str
    type: str
    claims: Sequence[CitedClaim]


def cited_ids(prose: str) -> list[str]:
    """The claim ids cited in ``prose``, in order of first use."""
    return list(dict.fromkeys(CITATION.findall(prose)))


class Summary(BaseModel):
    """The summary prose of an entity page."""

    summary: str = Field(
        description="1-4 sentences; every sentence ends with one or more [^claim-id] citations.",
        min_length=1,
    )

    @field_validator("summary")
    @classmethod
    def _cited(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip()
        ids = cited_ids(v)
        if not ids:
            raise ValueError("the summary cites no claim; end every sentence with [^claim-id]")
        if not _ENDS_CITED.search(v):
            raise ValueError("the last sentence has no citation; end every sentence with [^claim-id]")
        allowed = (info.context or {}).get("claim_ids")
        if allowed is not None:
            unknown = [i for i in ids if i not in allowed]
            if unknown:
                raise ValueError(f"cites unknown claim id(s) {unknown}; cite only the ids given")
        return v


SYSTEM = f"""You write the summary paragraph of a wiki page from the facts given.
Write 1 to 4 plain sentences using only these facts. End every sentence with the ids of the facts it \
uses as footnotes, like [^c1a2b3] or [^c1a2b3][^d4e5f6]. Cite only ids from the data.
Reply with one JSON object: {{"summary": "..."}}.
{FENCE_RULE}"""


def build_messages(ctx: ComposeContext) -> list[dict[str, str]]:
    """The composition prompt: instructions first, the fenced claims last.

    Args:
        ctx: the entity, its type and the claims the prose may cite.

    Returns:
        Chat messages for ``ModelClient.complete("compose", ..., Summary)``.
    """
    lines = [f"ENTITY: {one_line(ctx.entity, 200)} ({ctx.type})", "FACTS:"]
    lines += [json.dumps({"id": c.id, "text": one_line(c.text, 500)}, ensure_ascii=False) for c in ctx.claims]
    user = f"Summarise the entity from its facts.\n{fence(chr(10).join(lines))}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def validation_context(ctx: ComposeContext) -> dict[str, Any]:
    """The ids the summary may cite (pass as ``validation_context``)."""
    return {"claim_ids": {c.id for c in ctx.claims}}
