"""The throughput baseline: a raw ASGI callable with no framework, no ORM and no auth.

`GET /api/v1/clients/{id}` with `Authorization: Bearer sbk_<agency>_<secret>`: the agency is
read from the key's middle segment (the key itself is NOT checked), then ONE query on an
asyncpg pool fetches the client by primary key `(agency_id, id)`, with its assigned staff
gathered in the same statement, and the row is rendered with orjson in exactly the body the
application returns (the bench compares both bodies before measuring).

This is the floor a tenant-aware endpoint on this stack cannot beat: it skips
authentication, the session/ORM layer, the RLS role switch and validation.

Served with the same uvicorn flags as the application:
`uvicorn tests.bench.bare:app ...` with SWITCHBOARD_DATABASE_URL set.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
import orjson

from services.kit import ids

SQL = """
SELECT c.id, c.legal_name, c.display_name, c.email, c.phone, c.website, c.street, c.city,
       c.region, c.postal_code, c.country, c.timezone, c.categories, c.hours, c.notes,
       c.lifecycle_stage, c.lifecycle_changed_at,
       ARRAY(SELECT a.user_id FROM client_assignments a
             WHERE a.agency_id = c.agency_id AND a.client_id = c.id
             ORDER BY a.created_at) AS assigned_staff,
       c.created_at, c.updated_at
FROM clients c
WHERE c.agency_id = $1 AND c.id = $2
"""
PREFIX = "/api/v1/clients/"
JSON_HEADERS = [(b"content-type", b"application/json")]
POOL_SIZE = int(os.environ.get("BENCH_BARE_POOL_SIZE", "10"))
POOL_MAX = int(os.environ.get("BENCH_BARE_POOL_MAX", "20"))

_pool: asyncpg.Pool | None = None


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


def _dsn() -> str:
    url = os.environ["SWITCHBOARD_DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _agency_of(headers: list[tuple[bytes, bytes]]) -> uuid.UUID | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            parts = key.strip().split("_")
            if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != "sbk":
                return None
            return ids.decode("a", f"a_{parts[1]}")
    return None


def _render(row: asyncpg.Record) -> bytes:
    body: dict[str, Any] = dict(row)
    body["id"] = ids.encode("cli", row["id"])
    body["assigned_staff"] = [ids.encode("usr", u) for u in row["assigned_staff"]]
    # the same key order as the application's ClientOut
    ordered = {k: body[k] for k in _ORDER}
    return orjson.dumps(ordered, option=orjson.OPT_UTC_Z)


_ORDER = (
    "id",
    "legal_name",
    "display_name",
    "email",
    "phone",
    "website",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "timezone",
    "categories",
    "hours",
    "notes",
    "lifecycle_stage",
    "lifecycle_changed_at",
    "assigned_staff",
    "created_at",
    "updated_at",
)


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _pool = await asyncpg.create_pool(
                _dsn(), min_size=POOL_SIZE, max_size=POOL_MAX, init=_init_connection
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    client_id = ids.decode("cli", path[len(PREFIX) :]) if path.startswith(PREFIX) else None
    agency_id = _agency_of(scope["headers"])
    if client_id is None or agency_id is None or scope["method"] != "GET":
        await _respond(send, 404, b'{"detail":"not found"}')
        return
    assert _pool is not None
    row = await _pool.fetchrow(SQL, agency_id, client_id)
    if row is None:
        await _respond(send, 404, b'{"detail":"not found"}')
        return
    await _respond(send, 200, _render(row))
