"""Resolution prompt: is each new mention the same entity as one of its numbered candidates?

This is the last, batched step of the entity-resolution cascade (exact name or alias, fuzzy match and
embedding neighbours come first, in code). Mentions and candidates come from model output on untrusted
documents, so they are fenced as data like a document; one JSON object per line inside the fence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from synth.prompts.fence import FENCE_RULE, fence, one_line


@dataclass(frozen=True)
class Candidate:
    """An existing entity that a mention might be."""

    name: str
    type: str
    description: str = ""
    aliases: Sequence[str] = ()


@dataclass(frozen=True)
class Mention:
    """A newly extracted entity and the existing entities it might be."""

    name: str
    type: str
    description: str = ""
    candidates: Sequence[Candidate] = field(default_factory=tuple)


@dataclass(frozen=True)
class ResolveContext:
    """The mentions to resolve in one call (numbered from 1 in the prompt)."""

    mentions: Sequence[Mention]


class ResolveDecision(BaseModel):
    """The decision for one mention."""

    mention: int = Field(description="The mention's number.", ge=1)
    candidate: int | None = Field(
        description="The number of the candidate that is the same entity, or null if none is."
    )
    reason: str = Field("", description="A few words on why.")


class Resolution(BaseModel):
    """One decision per mention."""

    decisions: list[ResolveDecision] = Field(description="One decision for each numbered mention.")

    @model_validator(mode="after")
    def _in_range(self, info: ValidationInfo) -> Resolution:
        counts = (info.context or {}).get("candidate_counts")
        if counts is None:
            return self
        for d in self.decisions:
            if d.mention > len(counts):
                raise ValueError(f"there is no mention {d.mention}")
            if d.candidate is not None and not 1 <= d.candidate <= counts[d.mention - 1]:
                raise ValueError(f"mention {d.mention} has no candidate {d.candidate}")
        return self


SYSTEM = f"""You decide whether newly found entities are the same as existing wiki entities.
Each line of the data is one mention with numbered candidates. For every mention, answer the number of \
the candidate that is the same real-world thing, or null if none is. The same name can mean different \
things (two cathedrals in different cities): use the descriptions. Names that differ in a number, version \
or date are different entities.
Reply with one JSON object: {{"decisions": [{{"mention": 1, "candidate": 2, "reason": "..."}}]}}, one \
decision per mention.
{FENCE_RULE}"""


def _line(number: int, m: Mention) -> str:
    row: dict[str, Any] = {
        "mention": number,
        "name": one_line(m.name, 200),
        "type": m.type,
        "description": one_line(m.description),
        "candidates": [
            {
                "n": i,
                "name": one_line(c.name, 200),
                "type": c.type,
                "aliases": [one_line(a, 100) for a in c.aliases][:8],
                "description": one_line(c.description),
            }
            for i, c in enumerate(m.candidates, start=1)
        ],
    }
    return json.dumps(row, ensure_ascii=False)


def build_messages(ctx: ResolveContext) -> list[dict[str, str]]:
    """The resolution prompt: instructions first, the fenced mentions and candidates last.

    Args:
        ctx: the mentions, each with its candidates.

    Returns:
        Chat messages for ``ModelClient.complete("resolve", ..., Resolution)``.
    """
    data = "\n".join(_line(i, m) for i, m in enumerate(ctx.mentions, start=1))
    user = f"Resolve these {len(ctx.mentions)} mention(s).\n{fence(data)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def validation_context(ctx: ResolveContext) -> dict[str, Any]:
    """What ``Resolution`` checks numbers against (pass as ``validation_context``)."""
    return {"candidate_counts": [len(m.candidates) for m in ctx.mentions]}
