"""Pairwise judge prompt: do two claims about one entity answer one question differently?

Code finds the candidates (same entity, same attribute key, different values, other sources; DESIGN
section 1) and asks the model about a few numbered pairs at a time. Each pair shows the entity, the
question "what is the <attribute> of <entity>?", and both answers with their source's own words, the
source's title and status line, and the date the value refers to. It never shows when a source
arrived: ingest order decides nothing.

The model answers facts, not verdicts: ``same_question``, ``same_answer``, ``both_true`` and which side,
if any, says it ``replaces`` the other. Code maps them to a verdict (``synth.judge_flow.verdict``), with
vetoes the model cannot override. An answer for a pair that is missing or malformed leaves that pair
unjudged (it is asked again later), never the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from synth.prompts.fence import FENCE_RULE, fence, one_line

MAX_PAIRS_PER_CALL = 5


@dataclass(frozen=True)
class Side:
    """One claim of a pair as the judge sees it."""

    value: str
    quote: str
    source: str  # the source's title (or file name)
    as_of: str | None = None
    status: str | None = None  # the source document's own status line, if it has one


@dataclass(frozen=True)
class Pair:
    """Two claims of other sources about one entity that may answer one question differently."""

    entity: str
    question: str
    a: Side
    b: Side


@dataclass(frozen=True)
class JudgeContext:
    pairs: Sequence[Pair]


class PairAnswer(BaseModel):
    """The model's reading of one numbered pair."""

    pair: int = Field(description="The pair's number.")
    same_question: bool = Field(description="A and B answer this same question about the same thing (and time).")
    same_answer: bool = Field(description="A and B give the same answer, maybe in other words.")
    both_true: bool = Field(description="Both answers can be true at once.")
    replaces: Literal["A", "B"] | None = Field(
        None, description="A or B if that source says it replaces the other one; else null."
    )
    reason: str = Field("", description="A few words on why.")

    @field_validator("replaces", mode="before")
    @classmethod
    def _side(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().strip(".").upper()
            return v if v in ("A", "B") else None
        return v


class PairJudgement(BaseModel):
    """One answer per pair. Answers naming a pair that was not asked are dropped, not fatal."""

    pairs: list[PairAnswer] = Field(description="One answer for each numbered pair.")

    @model_validator(mode="after")
    def _known_pairs(self, info: ValidationInfo) -> PairJudgement:
        count = (info.context or {}).get("pairs")
        if count is None:
            return self
        seen: set[int] = set()
        kept = []
        for answer in self.pairs:
            if 1 <= answer.pair <= count and answer.pair not in seen:
                seen.add(answer.pair)
                kept.append(answer)
        if self.pairs and not kept:
            raise ValueError(f"no answer names one of the pairs 1..{count}")
        self.pairs = kept
        return self


def _side_row(label: str, s: Side) -> str:
    row: dict[str, Any] = {"answer": one_line(s.value, 300), "quote": one_line(s.quote, 400),
                           "source": one_line(s.source, 160)}
    if s.as_of:
        row["as_of"] = one_line(s.as_of, 40)
    if s.status:
        row["source_status"] = one_line(s.status, 160)
    return f"{label}: {json.dumps(row, ensure_ascii=False)}"


def _pair_block(n: int, p: Pair) -> str:
    return "\n".join(
        (f"PAIR {n}: entity {json.dumps(one_line(p.entity, 200), ensure_ascii=False)}; question: "
         f"{one_line(p.question, 300)}", _side_row("A", p.a), _side_row("B", p.b))
    )


def _example(n: int, entity: str, question: str, a: Side, b: Side) -> str:
    return _pair_block(n, Pair(entity, question, a, b))


_EXAMPLES = "\n".join(
    (
        _example(1, "Dana Whitfield", "What is the birth date of Dana Whitfield?",
                 Side("August 1, 1983", "Dana Whitfield (born August 1, 1983) is a former American football "
                      "linebacker", "Dana Whitfield"),
                 Side("August 1, 1985", "Dana Whitfield (born August 1, 1985) is a former American football "
                      "linebacker", "Dana Whitfield (American football)")),
        _example(2, "Lake Varna", "What is the population of Lake Varna?",
                 Side("2,114 residents", "As of the census of 2010, it had 2,114 residents", "Lake Varna", "2010"),
                 Side("2,306", "2020 2,306", "Lake Varna, Ohio", "2020")),
        _example(3, "Sleepless in Seattle", "What is the cast of Sleepless in Seattle?",
                 Side("Tom Hanks", "starring Tom Hanks", "Sleepless in Seattle"),
                 Side("Meg Ryan", "Meg Ryan plays Annie", "Sleepless in Seattle (film)")),
        _example(4, "Multi-cluster", "What is the approach of Multi-cluster?",
                 Side("one cluster per environment", "we will run one cluster per environment", "21. Multi-cluster",
                      status="Superseded by [036. Multi-cluster](036-multi-cluster.md)"),
                 Side("several clusters per environment", "we will run several clusters per environment",
                      "36. Multi-cluster", status="Accepted")),
        _example(5, "Cathedral of Saint Augustine", "What is the location of Cathedral of Saint Augustine?",
                 Side("Tucson, Arizona", "The Cathedral of Saint Augustine is in Tucson, Arizona",
                      "Cathedral of Saint Augustine (Tucson)"),
                 Side("St. Augustine, Florida", "the Cathedral Basilica of St. Augustine in St. Augustine, Florida",
                      "Cathedral Basilica of St. Augustine")),
    )
)
_EXAMPLE_ANSWER = json.dumps(
    {
        "pairs": [
            {"pair": 1, "same_question": True, "same_answer": False, "both_true": False, "replaces": None,
             "reason": "two birth dates"},
            {"pair": 2, "same_question": True, "same_answer": False, "both_true": True, "replaces": None,
             "reason": "populations in different years"},
            {"pair": 3, "same_question": True, "same_answer": False, "both_true": True, "replaces": None,
             "reason": "two members of one cast"},
            {"pair": 4, "same_question": True, "same_answer": False, "both_true": False, "replaces": "B",
             "reason": "21 is superseded by 036"},
            {"pair": 5, "same_question": False, "same_answer": False, "both_true": True, "replaces": None,
             "reason": "two cathedrals share the name"},
        ]
    }
)

SYSTEM = f"""You check whether two sources disagree. Each numbered pair asks one question about one \
entity and gives two answers, A and B, each with the source's own words (quote), the source's title, \
its status line if it has one, and the date the answer refers to if known.
For every pair reply:
- "same_question": true if A and B answer this same question about the same thing; false if they are \
about different things (two people or places that share a name, different parts, different events).
- "same_answer": true if A and B give the same answer, in other words or another format.
- "both_true": true if both answers can be true at once (values at different dates, two items of one \
list, a rounded and an exact figure); false if one of them must be wrong.
- "replaces": "A" or "B" if that side's document replaces the other (a later decision, "superseded \
by"); else null.
- "reason": a few words.
Reply with one JSON object: {{"pairs": [{{"pair": 1, "same_question": ..., "same_answer": ..., \
"both_true": ..., "replaces": ..., "reason": "..."}}]}}.
{FENCE_RULE}

Example pairs:
{_EXAMPLES}
Example answer:
{_EXAMPLE_ANSWER}"""


def build_messages(ctx: JudgeContext) -> list[dict[str, str]]:
    """The pairwise judge prompt: instructions and examples first, the fenced pairs last.

    Args:
        ctx: up to ``MAX_PAIRS_PER_CALL`` pairs.

    Returns:
        Chat messages for ``ModelClient.complete("judge", ..., PairJudgement)``.
    """
    body = "\n".join(_pair_block(i, p) for i, p in enumerate(ctx.pairs, start=1))
    user = f"Answer for the {len(ctx.pairs)} pair(s).\n{fence(body)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def validation_context(ctx: JudgeContext) -> dict[str, Any]:
    """How many pairs an answer may name (pass as ``validation_context``)."""
    return {"pairs": len(ctx.pairs)}


def question(attribute: str | None, entity: str) -> str:
    """The question two claims of one slot answer: ``What is the <attribute> of <entity>?``."""
    attr = " ".join((attribute or "").split()) or "fact stated"
    return f"What is the {attr} of {' '.join(entity.split())}?"
