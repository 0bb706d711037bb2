"""The job flows, one module per job kind, registered in one table (``FLOWS``).

Each kind has a typed payload (validated from ``Job.payload`` before the flow runs, so a malformed
payload fails the job with a clear reason instead of a ``KeyError`` deep in a flow) and a run function
``run(deps, job, payload) -> follow-up job ids``. Modules are imported when their kind first runs, so a
worker that only renders never imports the extraction prompt and a cycle between flows cannot form at
import time.

=============  =========================  =========================================================
kind           module                     does
=============  =========================  =========================================================
extract        ``synth.flows.extract``    source text -> model -> grounded claims -> render jobs
render         ``synth.flows.render``     judge, compose and publish one entity's page
source_page    ``synth.flows.source_page`` the source's own summary page
catalog        ``synth.flows.catalog``    index.md, log.md, contradictions.md (debounced)
retract        ``synth.flows.retract``    retract a source's claims and re-render what it touched
=============  =========================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    """Base of the job payloads: unknown keys are kept (older jobs in the table may carry them)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ExtractPayload(Payload):
    source_id: str
    previous_id: str | None = None


class RenderPayload(Payload):
    entity_id: int


class SourcePagePayload(Payload):
    source_id: str
    assisted_by: str | None = None


class CatalogPayload(Payload):
    pass


class RetractPayload(Payload):
    source_id: str


@dataclass(frozen=True)
class Flow:
    kind: str
    payload: type[Payload]
    module: str
    function: str

    def run(self, deps: Any, job: Any) -> list[int]:
        """Validate the job's payload and run the flow; returns the follow-up job ids."""
        payload = self.payload.model_validate(job.payload or {})
        run: Callable[..., list[int]] = getattr(import_module(self.module), self.function)
        return run(deps, job, payload)


FLOWS: dict[str, Flow] = {
    f.kind: f
    for f in (
        Flow("extract", ExtractPayload, "synth.flows.extract", "run_extract"),
        Flow("render", RenderPayload, "synth.flows.render", "run_render"),
        Flow("source_page", SourcePagePayload, "synth.flows.source_page", "run_source_page"),
        Flow("catalog", CatalogPayload, "synth.flows.catalog", "run_catalog"),
        Flow("retract", RetractPayload, "synth.flows.retract", "run_retract"),
    )
}


def flow_for(kind: str) -> Flow:
    """The flow registered for ``kind``; ``ValueError`` for a kind nobody registered."""
    try:
        return FLOWS[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r}") from None
