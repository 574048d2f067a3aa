"""One HTTP transport for every back-channel call, whichever httpx Authlib runs on.

Authlib's `AsyncOAuth2Client` is built on `httpx2` when that package is installed and on
`httpx` otherwise. Callers (the sample app, upstream sign-in) take an `httpx` transport
(tests route it to the provider in-process); when Authlib's client is an `httpx2` client,
the transport is bridged: each request is replayed through the `httpx` transport and the
raw answer handed back.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client


def authlib_http() -> ModuleType:
    """The httpx-like module Authlib's async client derives from (`httpx2` or `httpx`)."""
    for cls in AsyncOAuth2Client.__mro__:
        if cls.__name__ == "AsyncClient":
            return sys.modules[cls.__module__.split(".")[0]]
    return httpx


class Borrowed(httpx.AsyncBaseTransport):
    """Someone else's transport, lent to a short-lived client: closing the client leaves it
    open."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def borrowed(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport | None:
    return Borrowed(transport) if transport is not None else None


def for_authlib(transport: httpx.AsyncBaseTransport | None) -> Any:
    """A transport Authlib's client accepts, sending through `transport` (None: its default),
    never closing it."""
    http = authlib_http()
    if transport is None or http is httpx:
        return borrowed(transport)
    inner: httpx.AsyncBaseTransport = transport

    class Bridge(http.AsyncBaseTransport):  # type: ignore[name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            body = await request.aread()
            forwarded = httpx.Request(
                request.method,
                str(request.url),
                headers=list(request.headers.raw),
                content=body,
            )
            answer = await inner.handle_async_request(forwarded)
            headers = list(answer.headers.raw)
            try:
                # Raw bytes: the receiving client decodes any content-encoding itself.
                raw = b"".join([chunk async for chunk in answer.aiter_raw()])
            except httpx.StreamConsumed:  # an answer built in memory, already decoded
                raw = answer.content
                headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
            finally:
                await answer.aclose()
            return http.Response(answer.status_code, headers=headers, content=raw)

        async def aclose(self) -> None:
            return None  # the caller owns the bridged transport

    return Bridge()
