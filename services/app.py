"""create_app(): middleware, routers, error handlers, lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

import tenants  # noqa: F401  (installs the tenant-scoping hooks)
from services.agencies.endpoints import router as agencies_router
from services.audit.endpoints import router as audit_router
from services.clients.endpoints import router as clients_router
from services.identity.endpoints import router as identity_router
from services.identity.keycache import KeyCacheListener, last_used
from services.identity.upstream_endpoints import router as upstream_router
from services.kit import openapi
from services.kit.db import dispose_engines, get_engine
from services.kit.logging import configure_logging
from services.kit.web import EdgeMiddleware, install_error_handlers
from services.oauth2.endpoints import issuer as oauth2_issuer
from services.oauth2.endpoints import router as oauth2_router
from services.scim.endpoints import router as scim_router
from services.settings import get_settings
from services.tasks import wire as wire_tasks


def _operation_id(route: APIRoute) -> str:
    return route.name  # stable, hand-chosen names: clients_get, api_keys_create, ...


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    # Owner or operator powers one `RESET ROLE` away: refused in production (tenants/rls.py).
    import anyio

    from tenants.rls import refuse_privileged_login

    await anyio.to_thread.run_sync(refuse_privileged_login, settings)
    # Everything imported at start-up lives as long as the process: moved out of the
    # collector's reach, so that full collections no longer walk ~200,000 long-lived objects
    # (a 100 ms pause each under load).
    gc.collect()
    gc.freeze()
    # Cached API keys may live longer while this process hears revocations (keycache).
    listener = KeyCacheListener.from_settings()
    if listener is not None:
        listener.start()
    last_used.start()  # API keys' last-used times, in batches
    beat = None
    if settings.tasks_in_process:  # no beat on the embedded default: sweep and purge here
        from services.schedule import InProcessBeat

        beat = InProcessBeat(wire_tasks(settings))
        beat.start()
    try:
        yield
    finally:
        if beat is not None:
            await beat.stop()
        await last_used.stop()
        if listener is not None:
            await listener.stop()
        await dispose_engines()


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    wire_tasks(settings)  # every task registered, the job publisher installed
    app = FastAPI(
        title="Switchboard",
        version="1.0",
        summary="One login, one client record, one bill for every solution an agency sells.",
        generate_unique_id_function=_operation_id,
        lifespan=_lifespan,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    openapi.install(app)  # problem responses, bearer auth, links from creates
    app.add_middleware(EdgeMiddleware)

    # Routes are matched in order: the OpenID provider's machine endpoints (the token
    # endpoint above all) first; none of them overlaps another route.
    app.include_router(oauth2_issuer)
    api = APIRouter(prefix="/api/v1")
    api.include_router(agencies_router)
    api.include_router(clients_router)
    api.include_router(identity_router)
    api.include_router(upstream_router)  # /api/v1/agency/sign-in-providers/{provider}
    api.include_router(audit_router)
    app.include_router(api)
    app.include_router(scim_router)  # /api/v1/scim-tokens and /a/{slug}/scim/v2
    app.include_router(oauth2_router)  # /api/v1/oauth-clients, /api/v1/clients/{id}/solutions

    from services.portal.endpoints import mount_portal

    mount_portal(app)  # the pages, the OpenID provider's authorize, consent and logout too

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks: dict[str, str] = {}
        try:
            async with get_engine().connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # report, never raise
            checks["database"] = f"error: {type(exc).__name__}"
        if not settings.tasks_in_process:
            checks["broker"] = await _broker_check()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _broker_check() -> str:
    import anyio

    from services.tasks import celery_app

    def ping() -> None:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    try:
        await anyio.to_thread.run_sync(ping)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
