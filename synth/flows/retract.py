"""The retract flow: a source's claims leave the ledger and every page they were on, in one commit.

The work is ``synth.lifecycle.run_retract`` (retraction shares its helpers with versions and the
lifecycle commands); this module is its entry in the flow table.
"""

from __future__ import annotations

from store.models import Job
from synth import lifecycle
from synth.deps import SynthDeps
from synth.flows import RetractPayload


def run_retract(deps: SynthDeps, job: Job, payload: RetractPayload) -> list[int]:
    """Retract ``payload.source_id`` and publish every page it changes; returns follow-up job ids."""
    return lifecycle.run_retract(deps, job)
