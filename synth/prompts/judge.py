"""Judgement prompt: new claims against the nearby active claims of the same entity.

Outcomes (DESIGN section 1): ``duplicate`` (says the same), ``supersedes`` (newer value of the same
attribute, e.g. a later decision or a changed value with a date; an earlier decision superseded or
rejected in favour of a later one is replaced, not disputed), ``disputes`` (sources disagree about the
same thing at the same time), or ``unrelated``. The candidate set is bounded by the caller (only claims
close to the new ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from synth.prompts.fence import FENCE_RULE, fence, one_line

JudgeOutcomeName = Literal["duplicate", "supersedes", "disputes", "unrelated"]


@dataclass(frozen=True)
class ClaimRef:
    """A claim as the judge sees it. ``observed`` is when its source was seen (ISO date); ``source`` is
    the source's name (its file or upload name), so the model can tell which document said what."""

    id: str
    text: str
    valid_from: str | None = None
    valid_to: str | None = None
    observed: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class JudgeContext:
    """New claims of one entity and the existing active claims near them."""

    entity: str
    new: Sequence[ClaimRef]
    existing: Sequence[ClaimRef]


class JudgeOutcome(BaseModel):
    """How one new claim relates to the existing claims."""

    claim: str = Field(description="The id of the new claim.")
    outcome: JudgeOutcomeName = Field(description="duplicate, supersedes, disputes or unrelated.")
    other: str | None = Field(
        None, description="The id of the existing claim it duplicates, supersedes or disputes; null if unrelated."
    )
    reason: str = Field("", description="One short sentence on why.")


class Judgement(BaseModel):
    """One outcome per new claim."""

    outcomes: list[JudgeOutcome] = Field(description="One outcome for each new claim.")

    @model_validator(mode="after")
    def _known_ids(self, info: ValidationInfo) -> Judgement:
        ctx = info.context or {}
        new, existing = ctx.get("new_ids"), ctx.get("existing_ids")
        if new is None or existing is None:
            return self
        for o in self.outcomes:
            if o.claim not in new:
                raise ValueError(f"{o.claim!r} is not one of the new claims")
            if o.outcome != "unrelated" and o.other not in existing:
                raise ValueError(f"{o.outcome} needs `other` to be an existing claim id, not {o.other!r}")
        return self


SYSTEM = f"""You compare new facts about one entity with the facts the wiki already has.
NEW claims entered the wiki after the EXISTING ones; "source" names the document each comes from.
For every NEW claim, answer one outcome against the EXISTING claims:
- "duplicate": it says the same as an existing claim;
- "supersedes": it replaces an existing claim: a newer value of the same attribute (the same setting, \
number, owner, status or decision), or a later decision that replaces an earlier one (an earlier \
decision superseded, rejected or deprecated in favour of a later one is replaced, not disputed);
- "disputes": it contradicts an existing claim about the same attribute at the same time and neither \
replaces the other;
- "unrelated": it is about another attribute or event, or both can be true (a later date alone does \
not make a claim replace another).
"other" is the id of the EXISTING claim concerned, never a NEW one (null for unrelated).
Reply with one JSON object: {{"outcomes": [{{"claim": "<new id>", "outcome": "...", "other": "<id>", \
"reason": "..."}}]}}.
{FENCE_RULE}"""


def _row(c: ClaimRef) -> str:
    row: dict[str, Any] = {"id": c.id, "text": one_line(c.text, 500)}
    for key in ("valid_from", "valid_to", "observed"):
        value = getattr(c, key)
        if value:
            row[key] = one_line(str(value), 40)
    if c.source:
        row["source"] = one_line(c.source, 120)
    return json.dumps(row, ensure_ascii=False)


def build_messages(ctx: JudgeContext) -> list[dict[str, str]]:
    """The judgement prompt: instructions first, the fenced claims last.

    Args:
        ctx: the entity, its new claims and the nearby existing claims.

    Returns:
        Chat messages for ``ModelClient.complete("judge", ..., Judgement)``.
    """
    lines = [f"ENTITY: {one_line(ctx.entity, 200)}", "EXISTING:"]
    lines += [_row(c) for c in ctx.existing]
    lines.append("NEW:")
    lines += [_row(c) for c in ctx.new]
    user = f"Judge the {len(ctx.new)} new claim(s).\n{fence(chr(10).join(lines))}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def validation_context(ctx: JudgeContext) -> dict[str, Any]:
    """The claim ids an answer may name (pass as ``validation_context``)."""
    return {"new_ids": {c.id for c in ctx.new}, "existing_ids": {c.id for c in ctx.existing}}
