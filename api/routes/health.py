"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import AppContext, app_context, reader
from api.routes.pages import ERRORS
from api.schemas import HealthOut
from store.db import ping

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=HealthOut, summary="The process is up")
def live() -> HealthOut:
    """Always ok while the process serves requests."""
    return HealthOut(status="ok", checks={})


def _check(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:  # each dependency reports its own failure
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def readiness(ctx: AppContext) -> HealthOut:
    """Check the database, the repository and the queue; the model only degrades readiness."""

    def database() -> None:
        ping(ctx.deps.session_factory)

    def repository() -> None:
        ctx.deps.store.head()

    checks = {"database": _check(database), "repository": _check(repository)}
    if ctx.deps.queue_ping is not None:
        checks["queue"] = _check(ctx.deps.queue_ping)
    try:
        model = ctx.deps.model_health()
    except Exception as exc:  # a broken health probe means we cannot vouch for the model
        model = f"degraded: {exc}"
    checks["model"] = "ok" if model == "ok" else "degraded"
    if any(v != "ok" for k, v in checks.items() if k != "model"):
        return HealthOut(status="down", checks=checks)
    return HealthOut(status="ok" if checks["model"] == "ok" else "degraded", checks=checks)


@router.get(
    "/health/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database, repository or queue is unreachable."}},
    summary="Ready to serve: database, repository and queue reachable",
)
def ready(ctx: AppContext = Depends(app_context)) -> Response:
    """200 with ``ok`` or ``degraded`` (model down: reads keep working); 503 with ``down`` otherwise."""
    health = readiness(ctx)
    return JSONResponse(health.model_dump(), status_code=503 if health.status == "down" else 200)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}, **ERRORS},
    dependencies=[Depends(reader)],
    summary="Prometheus metrics",
)
def metrics(ctx: AppContext = Depends(app_context)) -> Response:
    """HTTP traffic, queue depth, job states, model calls and tokens, conflicts, breaker state."""
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
