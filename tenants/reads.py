"""Tenant-scoped reads without the ORM, for the few read paths that run on every request.

Domain code uses the ORM session (`tenants.scoping`) by default. A read that runs on every
API call (a client by id) cannot afford the ORM's per-statement machinery, so it may use this
module instead. The isolation rules are the same, enforced differently:

* **First wall, checked once at import.** A `TenantQuery` is written in SQLAlchemy Core and,
  when it is defined, every tenant table in it (FROM, joins, subqueries) must be filtered by
  `agency_id = :agency_id`. A query that forgets the filter fails at import, not in
  production. The caller never passes the agency: `tenant_reads(ctx)` binds it from the
  principal's tenant, so a request cannot name another agency.
* **Second wall, per transaction.** On PostgreSQL the transaction is `READ ONLY` and starts
  with the same role and tenant settings as the ORM path (`tenants.scoping`), sent in the
  same round trip as `BEGIN`, so row-level security applies whatever the query says. A
  connection that fails mid-transaction is discarded, never returned to the pool.
* **Client scope** (client users, client-scoped keys) is the caller's to check for the row
  it reads (`TenantContext.allows_client`); on PostgreSQL the client role's policies check
  it again.

The statement is compiled once per dialect. On PostgreSQL it runs as a prepared statement on
a connection of the read pool (`services.kit.db.get_read_pool`: plain asyncpg, values come
back as asyncpg decodes them: UUIDs, aware datetimes, JSON as Python objects); on SQLite it
runs through SQLAlchemy Core on the application's engine.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Column, Table
from sqlalchemy.sql import Select, operators
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.util import find_tables
from sqlalchemy.sql.visitors import iterate

from services.kit.db import get_engine, get_read_pool
from services.kit.errors import TenantScopeMissing
from services.settings import get_settings
from tenants.context import TenantContext
from tenants.scoping import _db_params, _tenant_models

AGENCY_PARAM = "agency_id"


def _tenant_columns() -> dict[Table, str]:
    """Every table a TenantQuery must filter, with the column that names the agency."""
    from tenants.models import Agency

    out: dict[Table, str] = {m.__table__: "agency_id" for m in _tenant_models()}
    out[Agency.__table__] = "id"  # the tenant root: its own row only
    return out


def _agency_filtered(statement: Select[Any], columns: dict[Table, str]) -> set[Any]:
    """The tables that carry `<agency column> = :agency_id` somewhere in the statement's WHERE
    or ON clauses (aliases are not supported: an aliased tenant table is never "covered", so
    a query using one is refused)."""
    covered: set[Any] = set()
    for element in iterate(statement):
        if not isinstance(element, BinaryExpression) or element.operator is not operators.eq:
            continue
        for col, other in ((element.left, element.right), (element.right, element.left)):
            if (
                isinstance(col, Column)
                and isinstance(other, BindParameter)
                and other.key == AGENCY_PARAM
                and columns.get(col.table) == col.name
            ):
                covered.add(col.table)
    return covered


@dataclass(frozen=True)
class TenantQuery:
    """A read statement that `tenant_reads` may run. Checked when defined (see module doc)."""

    name: str
    statement: Select[Any]
    _compiled: dict[str, tuple[str, tuple[str, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        columns = _tenant_columns()
        touched = [
            t
            for t in find_tables(self.statement, check_columns=True, include_joins=True)
            if t in columns
        ]
        if not touched:
            raise TenantScopeMissing(f"query {self.name!r} reads no tenant table")
        covered = _agency_filtered(self.statement, columns)
        missing = [t for t in touched if t not in covered]
        if missing:
            names = ", ".join(sorted(str(getattr(t, "name", t)) for t in missing))
            raise TenantScopeMissing(
                f"query {self.name!r} does not filter {names} by its agency (= :{AGENCY_PARAM})"
            )

    def sql_for(self, dialect: Any) -> tuple[str, tuple[str, ...]]:
        """The statement's SQL for `dialect` and the names of its positional parameters."""
        hit = self._compiled.get(dialect.name)
        if hit is None:
            compiled = self.statement.compile(dialect=dialect)
            hit = (str(compiled), tuple(compiled.positiontup or ()))
            self._compiled[dialect.name] = hit
        return hit


Row = Mapping[str, Any]


class TenantReads:
    """The reads of one tenant transaction."""

    def __init__(self, ctx: TenantContext, *, driver: Any = None, conn: Any = None) -> None:
        # PostgreSQL: an asyncpg connection (`driver`); SQLite: a SQLAlchemy AsyncConnection.
        self.ctx, self._driver, self._conn = ctx, driver, conn

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        if AGENCY_PARAM in params:
            raise TenantScopeMissing("the agency comes from the tenant, never from a caller")
        return {**params, AGENCY_PARAM: self.ctx.agency_id}

    async def all(self, query: TenantQuery, **params: Any) -> Sequence[Row]:
        values = self._params(params)
        if self._driver is not None:
            sql, order = query.sql_for(_pg_dialect())
            return await self._driver.fetch(sql, *(values[name] for name in order))
        result = await self._conn.execute(query.statement, values)
        return [row._mapping for row in result]

    async def one_or_none(self, query: TenantQuery, **params: Any) -> Row | None:
        rows = await self.all(query, **params)
        return rows[0] if rows else None


@cache
def _pg_dialect() -> Any:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    return dialect()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def begin_sql(ctx: TenantContext) -> str:
    """BEGIN plus the transaction's role and tenant, as one simple-protocol message."""
    p = _db_params(ctx)
    return (
        "BEGIN READ ONLY; SELECT "
        f"set_config('role', {_literal(p['role'])}, true), "
        f"set_config('app.agency_id', {_literal(p['agency'])}, true), "
        f"set_config('app.client_ids', {_literal(p['clients'])}, true), "
        f"set_config('app.user_id', {_literal(p['user'])}, true)"
    )


@asynccontextmanager
async def tenant_reads(ctx: TenantContext) -> AsyncIterator[TenantReads]:
    """One read-only transaction in `ctx`'s tenant."""
    if ctx.agency_id is None or ctx.is_unscoped:
        raise TenantScopeMissing("tenant_reads needs an agency")
    if not isinstance(ctx.agency_id, uuid.UUID):
        raise TenantScopeMissing("the tenant's agency id is not a UUID")
    if not get_settings().is_postgres:
        async with get_engine().connect() as conn:
            try:
                yield TenantReads(ctx, conn=conn)
            finally:
                await conn.rollback()
        return
    pool = await get_read_pool()
    async with pool.acquire() as driver:
        try:
            await driver.execute(begin_sql(ctx))
            yield TenantReads(ctx, driver=driver)
            await driver.execute("COMMIT")
        except Exception:
            # A failed statement, or an error in the caller's code: end the transaction; if
            # even that fails, the connection is closed, never returned to the pool.
            try:
                await driver.execute("ROLLBACK")
            except BaseException:
                driver.terminate()
            raise
        except BaseException:
            # Cancelled (the client went away) mid-statement: the connection's state is
            # unknown, so it is closed rather than reused.
            driver.terminate()
            raise
