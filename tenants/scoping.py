"""Fail-closed tenant scoping for every ORM statement, plus the PostgreSQL second wall.

* Every ORM SELECT/UPDATE/DELETE run by an `AppSession` gets the tenant's criteria attached
  (agency, and client scope for client-scoped principals). With no tenant on the session the
  statement is refused: code cannot forget the filter.
* Every flush checks that new and changed rows belong to the session's tenant.
* On PostgreSQL every transaction starts with the application's restricted role and the
  tenant as transaction-local settings (`set_config(..., true)`), so row-level security is in
  force whatever DATABASE_URL the operator supplied, and nothing survives into the next
  transaction on a pooled connection.
* `unscoped(session, reason)` is the one, explicit, logged way around all of this.
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, TypeVar

import structlog
from sqlalchemy import ColumnElement, Table, and_, event, or_, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, with_loader_criteria
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnClause
from sqlalchemy.sql.util import find_tables
from sqlmodel import SQLModel, col

from services.kit.db import AppSession
from services.kit.errors import TenantScopeMissing
from services.kit.models import TenantModel
from services.settings import get_settings
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, Membership, User
from tenants.principal import Principal

log = structlog.get_logger("switchboard.tenancy")

TENANT_KEY = "tenant"
PRINCIPAL_KEY = "principal"
REQUEST_KEY = "request"
_APPLIED_KEY = "_tenant_db_settings"


def current_tenant(session: AsyncSession | Session) -> TenantContext | None:
    return session.info.get(TENANT_KEY)


def current_principal(session: AsyncSession | Session) -> Principal | None:
    return session.info.get(PRINCIPAL_KEY)


async def set_tenant(
    session: AsyncSession, ctx: TenantContext, principal: Principal | None = None
) -> None:
    """Put the session in a tenant, or narrow the tenant it is in. Applies at once to an open
    PostgreSQL transaction.

    Never widens: a session in agency A cannot be moved to agency B, a client-scoped session
    cannot become agency-wide or gain clients, and only `unscoped()` leaves the tenant. The
    few sanctioned widenings are named in this module (`Widening`) with their reason.
    """
    current = session.info.get(TENANT_KEY)
    if current is not None and not _within(ctx, current):
        log.error("tenancy.widening_refused", current=repr(current), requested=repr(ctx))
        raise TenantScopeMissing("a tenant scope may be narrowed, never widened")
    await _switch(session, ctx, principal)


def _within(new: TenantContext, current: TenantContext) -> bool:
    """Whether everything `new` lets a session see, `current` lets it see already."""
    if current.is_unscoped:
        return True
    if new.is_unscoped:
        return False
    if new.agency_id is None:
        return True  # no tenant: nothing visible
    if new.agency_id != current.agency_id:
        return False
    if current.client_ids is None:
        return True
    if new.client_ids is None or not new.client_ids <= current.client_ids:
        return False
    return new.user_id is None or new.user_id == current.user_id


async def _switch(
    session: AsyncSession, ctx: TenantContext | None, principal: Principal | None = None
) -> None:
    """The kernel's own move (no narrowing check): entering, restoring after a bypass."""
    if ctx is None:
        session.info.pop(TENANT_KEY, None)
    else:
        session.info[TENANT_KEY] = ctx
    if principal is not None:
        session.info[PRINCIPAL_KEY] = principal
    if session.in_transaction():
        await _reapply(session, ctx)


async def _reapply(session: AsyncSession, ctx: TenantContext | None) -> None:
    """Apply the tenant to the open transaction's connection of the login `ctx` runs on,
    unless it already has exactly these settings (saves a round trip on the hot path: the key
    lookup and the request share a tenant). A login whose connection has not begun in this
    transaction gets the settings when it begins (`_on_begin`)."""
    tx = session.sync_session.get_transaction()
    engine = session.sync_session.get_bind()
    applied = session.info.get(_APPLIED_KEY) or {}
    entry = applied.get(engine)
    if entry is None or entry[0] is not tx:
        return
    params = _db_params(ctx)
    if entry[1] == params:
        return
    conn = await session.connection()
    await conn.run_sync(_apply_db_settings, ctx)
    applied[engine] = (tx, params)


async def scope_to(session: AsyncSession, principal: Principal) -> None:
    await set_tenant(session, principal.tenant(), principal)


def bind_principal(session: AsyncSession, principal: Principal) -> None:
    """`scope_to` for a session that has not begun a transaction yet (no database call). The
    platform operator, who has no agency, is recorded as the actor and gets no tenant."""
    if session.in_transaction():
        raise RuntimeError("bind_principal() on a session with an open transaction")
    current = session.info.get(TENANT_KEY)
    if (
        principal.agency_id is not None
        and current is not None
        and not _within(principal.tenant(), current)
    ):
        raise TenantScopeMissing("a tenant scope may be narrowed, never widened")
    session.info[PRINCIPAL_KEY] = principal
    if principal.agency_id is not None:
        session.info[TENANT_KEY] = principal.tenant()


def _require_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a scope bypass needs a reason")
    return reason.strip()


@asynccontextmanager
async def unscoped(session: AsyncSession, reason: str) -> AsyncIterator[AsyncSession]:
    """Run the block with no tenant filter (and the operator role on PostgreSQL).

    Every use names its reason; the reason is logged at INFO and written to any audit event
    the block produces. Grep for `unscoped(` to review them all.
    """
    reason = _require_reason(reason)
    log.info("tenancy.unscoped", reason=reason)
    async with _temporarily(session, TenantContext(agency_id=None, unscoped_reason=reason)):
        yield session


class Widening(StrEnum):
    """The only ways a tenant scope may widen, each with its reason. Adding one is a change
    to the tenancy kernel, reviewed as such; domain code names one of these."""

    # services/identity/impersonation.py: whether a person may be impersonated depends on
    # every role they hold, and a client-scoped staff member's scope hides agency roles.
    ROLES_OF_PERSON = "a person's rank is decided on all their roles in the agency"
    # services/oauth2: the provider's rows (its clients, codes, consents, tokens) are
    # agency-level; it works on the signed-in person's behalf, whatever their client scope,
    # and the person stays the actor of what it writes to the audit trail.
    OIDC_PROVIDER = "the OpenID provider's rows are agency-level"
    # services/portal/impersonation.py: when an impersonation ends, the request (scoped to the
    # person viewed) resolves the staff member's own browser session, in the same agency.
    BACK_FROM_IMPERSONATION = "an ended impersonation hands back the staff member's session"


async def widen_to_agency(
    session: AsyncSession, why: Widening, principal: Principal | None = None
) -> None:
    """Make the session agency-wide in its own agency for the rest of the unit of work, for
    one of the sanctioned reasons. The agency never changes."""
    current = _widenable(session, why)
    await _switch(session, TenantContext.for_agency(current), principal)


@asynccontextmanager
async def agency_wide(session: AsyncSession, why: Widening) -> AsyncIterator[AsyncSession]:
    """Agency-wide in the session's own agency for the block, for a sanctioned reason; the
    previous scope is restored when it ends."""
    agency_id = _widenable(session, why)
    async with _temporarily(session, TenantContext.for_agency(agency_id)):
        yield session


def _widenable(session: AsyncSession, why: Widening) -> uuid.UUID:
    if not isinstance(why, Widening):
        raise TypeError("widening needs one of tenants.scoping.Widening")
    current: TenantContext | None = session.info.get(TENANT_KEY)
    if current is None or current.agency_id is None:
        raise TenantScopeMissing("only a session inside an agency may be made agency-wide")
    log.info("tenancy.agency_wide", reason=why.value, agency_id=str(current.agency_id))
    return current.agency_id


@asynccontextmanager
async def _temporarily(session: AsyncSession, ctx: TenantContext) -> AsyncIterator[None]:
    previous = session.info.get(TENANT_KEY)
    await _switch(session, ctx)
    try:
        yield
        await session.flush()  # writes made here are flushed under the scope they were made in
    except BaseException:
        # The transaction failed and will be rolled back: restore the context without touching
        # the database (any statement now would fail and hide the original error). The next
        # transaction applies the restored context when it begins.
        _restore_info(session, previous)
        session.info.pop(_APPLIED_KEY, None)
        raise
    await _switch(session, previous)


def _restore_info(session: AsyncSession, previous: TenantContext | None) -> None:
    if previous is None:
        session.info.pop(TENANT_KEY, None)
    else:
        session.info[TENANT_KEY] = previous


# ---- PostgreSQL: role and tenant per transaction ----------------------------------------

_SET_SQL = text(
    "SELECT set_config('role', :role, true), "
    "set_config('app.agency_id', :agency, true), "
    "set_config('app.client_ids', :clients, true), "
    "set_config('app.user_id', :user, true)"
)


def _db_params(ctx: TenantContext | None) -> dict[str, str]:
    settings = get_settings()
    if ctx is not None and ctx.is_unscoped:
        return {"role": settings.db_operator_role, "agency": "", "clients": "", "user": ""}
    agency = str(ctx.agency_id) if ctx is not None and ctx.agency_id else ""
    clients = ""
    if ctx is not None and ctx.client_ids is not None:
        # "{}" is an empty array: a client-scoped principal with no clients sees no client rows.
        clients = "{" + ",".join(str(c) for c in sorted(ctx.client_ids)) + "}"
    user = str(ctx.user_id) if ctx is not None and ctx.user_id else ""
    # Client-scoped sessions use their own role: only it carries the client-scope policies,
    # so agency-wide queries keep plans as good as an explicit tenant filter.
    role = settings.db_client_role if clients else settings.db_app_role
    return {"role": role, "agency": agency, "clients": clients, "user": user}


# The same statement for asyncpg's placeholders, sent as it is: it opens every transaction,
# and needs no compiling.
_SET_SQL_DOLLAR = (
    "SELECT set_config('role', $1, true), set_config('app.agency_id', $2, true), "
    "set_config('app.client_ids', $3, true), set_config('app.user_id', $4, true)"
)


def _apply_db_settings(
    conn: Connection, ctx: TenantContext | None, params: dict[str, str] | None = None
) -> None:
    if conn.dialect.name != "postgresql":
        return
    p = params if params is not None else _db_params(ctx)
    if conn.dialect.paramstyle == "numeric_dollar":
        conn.exec_driver_sql(_SET_SQL_DOLLAR, (p["role"], p["agency"], p["clients"], p["user"]))
    else:
        conn.execute(_SET_SQL, p)


@event.listens_for(AppSession, "after_begin")
def _on_begin(session: Session, tx: SessionTransaction, conn: Connection) -> None:
    ctx = session.info.get(TENANT_KEY)
    params = _db_params(ctx)
    _apply_db_settings(conn, ctx, params)
    applied = session.info.get(_APPLIED_KEY)
    if applied is None or any(entry[0] is not tx for entry in applied.values()):
        applied = session.info[_APPLIED_KEY] = {}
    applied[conn.engine] = (tx, params)
    # The write guard (below) finds the session from the connection its statements run on,
    # whichever API sent them: the ORM, bulk mappings, or the session's connection itself.
    _session_of_connection[conn] = weakref.ref(session)


def _operator_login(session: Session) -> bool:
    """Operator work runs on the operator's login and pool: `unscoped()` blocks, and every
    unit of work of the platform operator (operator API, CLI, onboarding). The application's
    login cannot reach the operator role at all."""
    ctx: TenantContext | None = session.info.get(TENANT_KEY)
    if ctx is not None and ctx.is_unscoped:
        return True
    principal: Principal | None = session.info.get(PRINCIPAL_KEY)
    return principal is not None and principal.is_operator


AppSession.operator_login = staticmethod(_operator_login)  # type: ignore[method-assign]


# ---- ORM: fail-closed criteria ----------------------------------------------------------


# Models register their tables as modules are imported, so these maps are rebuilt whenever
# the number of tables changed: computed before some domain's models were imported, they
# would leave those tables unscoped (fail open).
_models_seen: tuple[int, tuple[type[TenantModel], ...]] = (-1, ())
_by_table_seen: tuple[int, dict[Table, type[SQLModel]]] = (-1, {})


def _tenant_models() -> tuple[type[TenantModel], ...]:
    global _models_seen
    registered = len(SQLModel.metadata.tables)
    if _models_seen[0] != registered:
        found: list[type[TenantModel]] = []
        stack = list(TenantModel.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            if hasattr(cls, "__table__"):
                found.append(cls)
        _models_seen = (registered, tuple(sorted(found, key=lambda c: c.__name__)))
    return _models_seen[1]


def _scoped_model_by_table() -> dict[Table, type[SQLModel]]:
    global _by_table_seen
    registered = len(SQLModel.metadata.tables)
    if _by_table_seen[0] != registered:
        out: dict[Table, type[SQLModel]] = {m.__table__: m for m in _tenant_models()}
        out[Agency.__table__] = Agency
        _by_table_seen = (registered, out)
    return _by_table_seen[1]


def _scoped_models_in(statement: Any) -> list[type[SQLModel]]:
    """The tenant tables a statement touches anywhere: columns, joins, subqueries, UPDATE or
    DELETE target. Criteria are attached for these only (cheap on the hot path)."""
    by_table = _scoped_model_by_table()
    found: dict[type[SQLModel], None] = {}
    for table in find_tables(
        statement, check_columns=True, include_joins=True, include_aliases=True, include_crud=True
    ):
        model = by_table.get(table)  # type: ignore[call-overload]
        if model is not None:
            found[model] = None
    return list(found)


# Statements built once, at import, for the hottest paths (the token endpoint): their tenant
# tables are found once, and the statement with a tenant's criteria attached is kept per
# tenant, so that neither is rebuilt per request. Keyed by the object itself (a statement
# derived from one, by `.where()` or `.options()`, is another object and is scoped afresh).
_prepared: dict[int, tuple[Any, tuple[type[SQLModel], ...] | None]] = {}
_scoped: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
SCOPED_STATEMENTS_KEPT = 4096

S = TypeVar("S")


def prepared(statement: S) -> S:
    """Declare a module-level statement (values as `bindparam()`) reused on every call: it is
    scoped like any other, once per tenant."""
    _prepared[id(statement)] = (statement, None)
    return statement


def _scoped_prepared(statement: Any, ctx: TenantContext) -> Any | None:
    entry = _prepared.get(id(statement))
    if entry is None or entry[0] is not statement:
        return None
    clients = tuple(sorted(ctx.client_ids)) if ctx.client_ids is not None else None
    key = (id(statement), ctx.agency_id, clients, ctx.user_id, len(SQLModel.metadata.tables))
    found = _scoped.get(key)
    if found is not None:
        _scoped.move_to_end(key)
        return found
    models = entry[1]
    if models is None:
        models = tuple(_scoped_models_in(statement))
        _prepared[id(statement)] = (statement, models)
    options = _criteria(models, ctx)
    found = statement.options(*options) if options else statement
    _scoped[key] = found
    while len(_scoped) > SCOPED_STATEMENTS_KEPT:
        _scoped.popitem(last=False)
    return found


@event.listens_for(AppSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent statement already carried the criteria
    ctx: TenantContext | None = state.session.info.get(TENANT_KEY)
    if ctx is None:
        raise TenantScopeMissing("ORM statement with no tenant in scope")
    if ctx.is_unscoped:
        return
    scoped = _scoped_prepared(state.statement, ctx)
    if scoped is not None:
        state.statement = scoped
        return
    options = _criteria(_scoped_models_in(state.statement), ctx)
    if options:
        state.statement = state.statement.options(*options)


def _criteria(models: Iterable[type[SQLModel]], ctx: TenantContext) -> list[Any]:
    """The loader criteria that keep a statement touching `models` inside the tenant."""
    agency_id = ctx.agency_id
    client_ids = sorted(ctx.client_ids) if ctx.client_ids is not None else None
    options: list[Any] = []
    for model in models:
        if model is Agency:
            options.append(
                with_loader_criteria(Agency, lambda cls: cls.id == agency_id, include_aliases=True)
            )
            continue
        options.append(
            with_loader_criteria(
                model, lambda cls: cls.agency_id == agency_id, include_aliases=True
            )
        )
        if client_ids is None:
            continue
        column = model.__client_column__  # type: ignore[attr-defined]
        if column:
            options.append(
                with_loader_criteria(
                    model, getattr(model, column).in_(client_ids), include_aliases=True
                )
            )
        elif model is User:
            # Client-scoped principals see the users of their own clients, and themselves.
            team = select(col(Membership.user_id)).where(
                col(Membership.agency_id) == agency_id, col(Membership.client_id).in_(client_ids)
            )
            visible: ColumnElement[bool] = col(User.id).in_(team)
            if ctx.user_id is not None:
                visible = or_(col(User.id) == ctx.user_id, visible)
            options.append(with_loader_criteria(User, visible, include_aliases=True))
    return options


# ---- Flush: writes stay inside the tenant, and every write is audited -------------------


@event.listens_for(AppSession, "before_flush")
def _guard_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    ctx: TenantContext | None = session.info.get(TENANT_KEY)
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantModel):
            if ctx is None:
                raise TenantScopeMissing(f"write to {type(obj).__name__} with no tenant in scope")
            if ctx.is_unscoped:
                continue
            if obj.agency_id is None and obj in session.new:
                obj.agency_id = ctx.agency_id
            if obj.agency_id != ctx.agency_id:
                raise TenantScopeMissing(f"cross-tenant write to {type(obj).__name__}")
            column = type(obj).__client_column__
            value: uuid.UUID | None = getattr(obj, column) if column else None
            if value is not None and not ctx.allows_client(value):
                raise TenantScopeMissing(f"write to {type(obj).__name__} outside client scope")
        elif isinstance(obj, Agency) and (
            ctx is None or (not ctx.is_unscoped and obj.id != ctx.agency_id)
        ):
            raise TenantScopeMissing("write to another agency")
    audit.record_flush(session)


# ---- Statements: every INSERT, upsert and UPDATE stays inside the tenant -------------------
#
# `before_flush` sees ORM objects only, and `do_orm_execute` sees ORM statements only. A Core
# INSERT, an executemany with a list of dicts, `bulk_insert_mappings`, a dialect upsert or a
# statement sent on the session's own connection reach the database through
# `Connection.execute` alone: the check lives there, for every connection a session began.

_session_of_connection: weakref.WeakKeyDictionary[Connection, weakref.ref[Session]] = (
    weakref.WeakKeyDictionary()
)
_UNKNOWN = object()  # a SQL expression: its value is not known before the database runs it


def _tenant_table_model(table: Any) -> type[SQLModel] | None:
    try:
        return _scoped_model_by_table().get(table)  # ORM statements carry annotated tables
    except TypeError:  # not hashable: a join or other FROM clause, never a DML target here
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, BindParameter):
        return value.effective_value if value.callable is not None else value.value
    if isinstance(value, ClauseElement):
        return _UNKNOWN
    return value


def _key(column: Any) -> str:
    return column if isinstance(column, str) else str(column.key)


def _statement_rows(stmt: Insert | Update, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The column values each row of the statement writes: its VALUES (single or multi-row)
    overridden by the execution parameters, as the database will receive them."""
    multi = getattr(stmt, "_multi_values", ())
    if multi:
        columns = list(stmt.table.columns)
        rows: list[dict[str, Any]] = []
        for batch in multi:
            for row in batch:
                if isinstance(row, dict):
                    rows.append({_key(k): _plain(v) for k, v in row.items()})
                else:
                    rows.append({c.key: _plain(v) for c, v in zip(columns, row, strict=False)})
        return rows
    base = {_key(k): _plain(v) for k, v in (stmt._values or {}).items()}
    if not params:
        return [base]
    return [{**base, **p} for p in params]


def _check_value(
    model: type[SQLModel], column: str, value: Any, ctx: TenantContext, *, present: bool
) -> None:
    name = model.__name__
    if model is Agency:
        if column == "id" and present and value != ctx.agency_id:
            raise TenantScopeMissing("write to another agency")
        return
    if column == "agency_id":
        if not present:
            raise TenantScopeMissing(f"insert into {name} without agency_id")
        if value is _UNKNOWN or value != ctx.agency_id:
            raise TenantScopeMissing(f"cross-tenant write to {name}")
        return
    if not present or value is None:
        return
    if value is _UNKNOWN or not ctx.allows_client(value):
        raise TenantScopeMissing(f"write to {name} outside client scope")


def _check_rows(
    model: type[SQLModel],
    rows: list[dict[str, Any]],
    ctx: TenantContext,
    *,
    inserting: bool,
) -> None:
    client_col = getattr(model, "__client_column__", None)
    if model is Agency:
        if inserting:
            raise TenantScopeMissing("an agency is created only by operator work (unscoped)")
        watched = ["id"]
    else:
        watched = ["agency_id"] + ([client_col] if client_col else [])
    for row in rows:
        for column in watched:
            present = column in row
            if not inserting and not present:
                continue  # an UPDATE that does not set the column leaves it as it is
            if (
                inserting
                and not present
                and column == client_col
                and ctx.client_ids is not None
                and model.__table__.c[column].default is not None  # type: ignore[attr-defined]
            ):
                # a generated client id (a new client) is outside any client scope
                raise TenantScopeMissing(f"write to {model.__name__} outside client scope")
            _check_value(model, column, row.get(column), ctx, present=present)


def _scope_upsert(stmt: Insert, model: type[SQLModel], ctx: TenantContext) -> Insert:
    """ON CONFLICT DO UPDATE: the SET clause may not move the row out of the tenant, and the
    update applies only to an existing row the session could write (a conflicting row of
    another client is left alone, as an UPDATE's criteria would leave it)."""
    clause: Any = stmt._post_values_clause  # OnConflictDoUpdate of either dialect
    to_set = getattr(clause, "update_values_to_set", None)
    if clause is None or to_set is None:
        return stmt  # not an upsert, or DO NOTHING
    client_col = getattr(model, "__client_column__", None)
    guarded = {"agency_id", *([client_col] if client_col else [])}
    if model is Agency:
        guarded = {"id"}
    for key, value in to_set.items() if isinstance(to_set, dict) else to_set:
        column = _key(key)
        if column not in guarded:
            continue
        if (
            isinstance(value, ColumnClause)
            and value.name == column
            and getattr(value.table, "name", None) == "excluded"
        ):
            continue  # the inserted row's own value, checked above
        _check_value(model, column, _plain(value), ctx, present=True)
    table = model.__table__  # type: ignore[attr-defined]
    scope: list[Any] = []
    if model is Agency:
        scope.append(table.c.id == ctx.agency_id)
    else:
        scope.append(table.c.agency_id == ctx.agency_id)
        if client_col and ctx.client_ids is not None:
            scope.append(table.c[client_col].in_(sorted(ctx.client_ids)))
    if clause.update_whereclause is not None:
        scope.insert(0, clause.update_whereclause)
    scoped_clause = copy.copy(clause)
    scoped_clause.update_whereclause = and_(*scope)
    scoped = stmt._generate()
    scoped._post_values_clause = scoped_clause
    return scoped


@event.listens_for(Engine, "before_execute", retval=True)
def _guard_statement(
    conn: Connection,
    clauseelement: Any,
    multiparams: Any,
    params: Any,
    execution_options: Any,
) -> tuple[Any, Any, Any]:
    if not isinstance(clauseelement, (Insert, Update)):
        return clauseelement, multiparams, params
    ref = _session_of_connection.get(conn)
    session = ref() if ref is not None else None
    if session is None:
        return clauseelement, multiparams, params  # not a session's connection: migrations
    model = _tenant_table_model(clauseelement.table)
    if model is None:
        return clauseelement, multiparams, params
    ctx: TenantContext | None = session.info.get(TENANT_KEY)
    if ctx is None:
        raise TenantScopeMissing(f"write to {model.__name__} with no tenant in scope")
    if ctx.is_unscoped:
        return clauseelement, multiparams, params
    rows_params = [p for p in (multiparams or []) if p] or ([params] if params else [])
    inserting = isinstance(clauseelement, Insert)
    if inserting and clauseelement.select is not None:
        raise TenantScopeMissing(
            f"INSERT ... SELECT into {model.__name__} in a tenant: the rows cannot be checked"
        )
    _check_rows(model, _statement_rows(clauseelement, rows_params), ctx, inserting=inserting)
    if isinstance(clauseelement, Insert):
        clauseelement = _scope_upsert(clauseelement, model, ctx)
    return clauseelement, multiparams, params
