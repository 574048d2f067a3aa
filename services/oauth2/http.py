"""The provider's side of HTTP, shared by its machine endpoints (`services.oauth2.endpoints`)
and its browser pages (`services.portal.pages.oidc`): the request as the provider reads it
(`snapshot`) and its answer as a response (`respond`)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from fastapi import Request, Response

from services.kit.errors import BadRequest
from services.oauth2.server import HttpSnapshot, ProviderResponse
from services.settings import get_settings

URLENCODED = "application/x-www-form-urlencoded"
FORM_TYPES = (URLENCODED, "multipart/form-data")
MAX_FORM_FIELDS = 1000  # as Starlette's form parser


def parse_urlencoded(body: bytes) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body as Starlette's form parser reads it (raw
    bytes as Latin-1, %-escapes as UTF-8), without the streaming parser: token requests are
    small and this is the provider's hottest path."""
    try:
        return parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        limit = f"Too many fields. Maximum number of fields is {MAX_FORM_FIELDS}."
        raise BadRequest(limit) from exc


async def snapshot(request: Request, *, machine: bool = False) -> HttpSnapshot:
    """The request as the provider reads it. `machine`: an issuer endpoint (token, userinfo,
    revoke, introspect), whose urlencoded body nothing else has read."""
    form: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "")
    if machine and request.method == "POST" and content_type.startswith(URLENCODED):
        form = parse_urlencoded(await request.body())
    elif request.method == "POST" and content_type.startswith(FORM_TYPES):
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    query = list(request.query_params.multi_items())
    url = get_settings().base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return HttpSnapshot(request.method, url, request.headers, query, form)


def respond(result: ProviderResponse) -> Response:
    """A provider answer (JSON body or bytes, status, headers) as a response."""
    headers = {k: v for k, v in result.headers if k.lower() != "content-type"}
    if isinstance(result.body, dict):
        return Response(
            json.dumps(result.body),
            status_code=result.status,
            headers=headers,
            media_type="application/json",
        )
    return Response(result.body or b"", status_code=result.status, headers=headers)
