"""PostgreSQL row-level security for tenant tables (the second wall).

Migrations call `enable_tenant_rls()` for every tenant table they create. The application
connects with whatever URL the operator gives and drops, per transaction, to a restricted
role (no BYPASSRLS, not an owner); the policies read the tenant from transaction-local
settings, so a connection returned to the pool keeps nothing. With no tenant set,
`NULLIF(...)::uuid` is NULL and every policy is false: nothing is visible.

Three roles:

* `switchboard_app` — agency-wide sessions: one policy, `agency_id = <tenant>`, which the
  planner folds into an index condition (no other policy is attached to this role, so plans
  stay as good as with an explicit filter);
* `switchboard_client` — client-scoped sessions (client users, assigned staff, client-scoped
  keys): the same tenant policy plus a RESTRICTIVE `client_scope` policy on tables that
  belong to a client;
* `switchboard_operator` — the explicit, audited `unscoped()` bypass.
"""

from __future__ import annotations

from typing import Any

AGENCY_EXPR = "NULLIF(current_setting('app.agency_id', true), '')::uuid"
CLIENTS_EXPR = "NULLIF(current_setting('app.client_ids', true), '')::uuid[]"
USER_EXPR = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def _roles() -> tuple[str, str, str]:
    from services.settings import get_settings

    s = get_settings()
    return s.db_app_role, s.db_client_role, s.db_operator_role


def create_roles_sql(*roles: str) -> list[str]:
    create = "\n".join(
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN\n"
        f"    CREATE ROLE {r} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;\n"
        "  END IF;"
        for r in roles
    )
    grant = "\n".join(f"    EXECUTE format('GRANT {r} TO %I', current_user);" for r in roles)
    return [
        f"DO $$ BEGIN\n{create}\nEND $$",
        # The connecting user must be able to SET ROLE to each (a superuser already can).
        "DO $$ BEGIN\n"
        "  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN\n"
        f"{grant}\n"
        "  END IF;\n"
        "END $$",
        f"GRANT USAGE ON SCHEMA public TO {', '.join(roles)}",
    ]


def enable_tenant_rls_sql(
    table: str,
    app_role: str,
    client_role: str,
    operator_role: str,
    *,
    tenant_column: str = "agency_id",
    client_column: str | None = None,
    client_scope_sql: str | None = None,
    client_scope_for: str = "ALL",
    app_grants: str = "SELECT, INSERT, UPDATE, DELETE",
    operator_grants: str = "SELECT, INSERT, UPDATE, DELETE",
) -> list[str]:
    tenant = f"{tenant_column} = {AGENCY_EXPR}"
    stmts = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} TO {app_role}, {client_role} "
        f"USING ({tenant}) WITH CHECK ({tenant})",
        f"CREATE POLICY operator_access ON {table} TO {operator_role} "
        "USING (true) WITH CHECK (true)",
        f"GRANT {app_grants} ON {table} TO {app_role}, {client_role}",
        f"GRANT {operator_grants} ON {table} TO {operator_role}",
    ]
    scope = client_scope_sql
    if scope is None and client_column:
        scope = f"{client_column} = ANY ({CLIENTS_EXPR})"
    if scope:
        stmts.append(
            f"CREATE POLICY client_scope ON {table} AS RESTRICTIVE FOR {client_scope_for} "
            f"TO {client_role} USING ({scope})"
        )
    return stmts


def enable_tenant_rls(op: Any, table: str, **kwargs: Any) -> None:
    """Alembic helper: enable RLS on `table` when running on PostgreSQL."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for stmt in enable_tenant_rls_sql(table, *_roles(), **kwargs):
        op.execute(stmt)


def create_roles(op: Any) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for stmt in create_roles_sql(*_roles()):
        op.execute(stmt)
