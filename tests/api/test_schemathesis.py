"""Schemathesis against the OpenAPI document: generated requests for every operation find no 5xx.

The app is served by uvicorn on loopback over the small real wiki; requests carry an admin key so the
upload operation goes through the intake service (its rate limit is raised for the run). Valid and
invalid (negative) inputs are generated for each operation. Schemathesis' pytest plugin does not run
on pytest 9 (it reads a removed ``Function._nodeid``), so each operation's Hypothesis strategy is driven
directly with ``@given``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.api.conftest import ADMIN_KEY, deps_for, serve
from tests.api.wiki_builder import build_wiki

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(tmp_path: Path, mode: GenerationMode) -> None:
    fx = build_wiki(tmp_path)
    app = create_app(deps_for(fx, uploads_per_minute=100_000, max_upload_bytes=64 * 1024))
    failures: list[str] = []
    tested: list[str] = []
    with serve(app) as port:
        base = f"http://127.0.0.1:{port}"
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            tested.append(operation.label)

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base, headers=AUTH, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to make invalid (no inputs)
            except Exception as exc:  # collect every operation's failure, then fail once with all of them
                failures.append(f"{operation.label}: {exc}"[:2000])
    assert len(tested) >= 14, tested
    assert failures == []
