"""The HTTP edge: one session per request committed at the edge, problem+json errors,
request ids, body-size limits, access logs and Prometheus metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit import jobs
from services.kit.db import session_factory
from services.kit.errors import PROBLEM_BASE, SwitchboardError, TenantScopeMissing
from services.settings import get_settings

log = structlog.get_logger("switchboard.http")

REQUESTS = Counter(
    "switchboard_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "switchboard_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

PROBLEM_JSON = "application/problem+json"


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """A pydantic model as the response, serialized once. Routes on the hottest paths return
    this (their `response_model` still documents the body): FastAPI would otherwise validate
    the model it was just given a second time before serializing it."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


# ---- the unit of work per request ----------------------------------------------------------


# Called with each request session as it opens (before any statement): the identity layer
# uses it to scope the session to a principal the request has already authenticated.
session_openers: list[Callable[[Request, AsyncSession], None]] = []


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session. Commits when the handler returns, rolls back on error; jobs
    queued during the request are published only after the commit."""
    session = session_factory()()
    session.info["request"] = {
        "request_id": getattr(request.state, "request_id", None),
        "ip": request.client.host if request.client else None,
    }
    request.state.db = session
    for opener in session_openers:
        opener(request, session)
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        jobs.discard_pending(session)
        raise
    finally:
        await session.close()
    await jobs.dispatch_committed(session)


DBSession = Annotated[AsyncSession, Depends(db_session, scope="function")]


# ---- errors ----------------------------------------------------------------------------------


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SwitchboardError)
    async def _typed(request: Request, exc: SwitchboardError) -> Response:
        if isinstance(exc, TenantScopeMissing):
            log.error("tenancy.scope_missing", detail=exc.detail, path=request.url.path)
            return problem(500, "internal-error", "Internal error", "An internal error occurred.")
        resp = problem(exc.status, exc.slug, exc.title, exc.detail, **exc.extra)
        resp.headers.update(exc.headers())
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        malformed = False
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                malformed = True
            errors.append(
                {
                    "field": "body"
                    if err.get("type") == "json_invalid"
                    else _field_path(tuple(err.get("loc", ()))),
                    "message": err.get("msg", "invalid"),
                    "type": err.get("type"),
                }
            )
        if malformed:
            return problem(
                400,
                "malformed-json",
                "Malformed JSON",
                "The request body is not valid JSON.",
                errors=errors,
            )
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem(
            422,
            "validation-error",
            "The request is not valid",
            f"Invalid fields: {fields}",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = {
            404: "not-found",
            405: "method-not-allowed",
            401: "unauthorized",
            403: "forbidden",
            413: "payload-too-large",
        }.get(exc.status_code, "http-error")
        return problem(exc.status_code, slug, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("http.unhandled", path=request.url.path)
        return problem(500, "internal-error", "Internal error", "An internal error occurred.")


# ---- middleware (pure ASGI: cheap on the hot path) -------------------------------------------


class EdgeMiddleware:
    """Request id, body-size limit, structured access log and metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.max_body = get_settings().max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        start = time.perf_counter()
        status_holder = {"status": 500}
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                too_big = True
            if too_big:
                await _reject_too_large(scope, receive, send, self.max_body, rid)
                self._observe(scope, 413, start)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await _reject_too_large(scope, receive, send, self.max_body, rid)
            status_holder["status"] = 413
        self._observe(scope, status_holder["status"], start)

    @staticmethod
    def _observe(scope: Scope, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        template = _route_template(scope)
        method = scope.get("method", "")
        REQUESTS.labels(method, template, str(status)).inc()
        LATENCY.labels(method, template).observe(elapsed)
        if log.is_enabled_for(logging.INFO):  # the access log: skip building it if it is off
            log.info(
                "http.request",
                method=method,
                path=_redact_path(scope.get("path") or ""),
                route=template,
                status=status,
                ms=round(elapsed * 1000, 2),
            )


# Path segments that carry a secret (single-use links): never logged as they are.
_SECRET_PATH = re.compile(r"(/invite/|/reset/)[^/?]+")


def _redact_path(path: str) -> str:
    return _SECRET_PATH.sub(r"\1[redacted]", path)


def _route_template(scope: Scope) -> str:
    """The matched path template (`/api/v1/clients/{client_id}`), never the raw path, so
    metrics keep a bounded label set. FastAPI ≥0.16x nests included routers; its effective
    route context carries the full template."""
    try:
        ctx = fastapi_routing._get_scope_effective_route_context(scope)
        template = getattr(ctx, "path_format", None) if ctx is not None else None
        if template:
            return str(template)
    except AttributeError:
        pass
    route = scope.get("route")
    return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")


class _BodyTooLarge(Exception):
    pass


async def _reject_too_large(
    scope: Scope, receive: Receive, send: Send, limit: int, rid: str
) -> None:
    resp = problem(
        413,
        "payload-too-large",
        "Request body too large",
        f"The request body exceeds {limit} bytes.",
    )
    resp.headers["x-request-id"] = rid
    await resp(scope, receive, send)
