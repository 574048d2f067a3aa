"""PostgreSQL row-level security for tenant tables (the second wall).

Migrations call `enable_tenant_rls()` for every tenant table they create. The application
connects with whatever URL the operator gives and drops, per transaction, to the restricted
role `switchboard_app` (no BYPASSRLS, not an owner); the policies read the tenant from
transaction-local settings, so a connection returned to the pool keeps nothing.
With no tenant set, `NULLIF(...)::uuid` is NULL and every policy is false: nothing is visible.
"""

from __future__ import annotations

from typing import Any

AGENCY_EXPR = "NULLIF(current_setting('app.agency_id', true), '')::uuid"
CLIENTS_EXPR = "NULLIF(current_setting('app.client_ids', true), '')::uuid[]"


def create_roles_sql(app_role: str, operator_role: str) -> list[str]:
    return [
        f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app_role}') THEN
    CREATE ROLE {app_role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{operator_role}') THEN
    CREATE ROLE {operator_role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$""",
        # The connecting user must be able to SET ROLE to both (a superuser already can).
        f"""DO $$ BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT {app_role} TO %I', current_user);
    EXECUTE format('GRANT {operator_role} TO %I', current_user);
  END IF;
END $$""",
        f"GRANT USAGE ON SCHEMA public TO {app_role}, {operator_role}",
    ]


def enable_tenant_rls_sql(
    table: str,
    app_role: str,
    operator_role: str,
    *,
    tenant_column: str = "agency_id",
    client_column: str | None = None,
    client_scope_sql: str | None = None,
    app_grants: str = "SELECT, INSERT, UPDATE, DELETE",
    operator_grants: str = "SELECT, INSERT, UPDATE, DELETE",
) -> list[str]:
    stmts = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} TO {app_role} "
        f"USING ({tenant_column} = {AGENCY_EXPR}) WITH CHECK ({tenant_column} = {AGENCY_EXPR})",
        f"CREATE POLICY operator_access ON {table} TO {operator_role} "
        "USING (true) WITH CHECK (true)",
        f"GRANT {app_grants} ON {table} TO {app_role}",
        f"GRANT {operator_grants} ON {table} TO {operator_role}",
    ]
    scope = client_scope_sql
    if scope is None and client_column:
        scope = f"{client_column} = ANY ({CLIENTS_EXPR})"
    if scope:
        stmts.append(
            f"CREATE POLICY client_scope ON {table} AS RESTRICTIVE TO {app_role} "
            f"USING ({CLIENTS_EXPR} IS NULL OR {scope})"
        )
    return stmts


def enable_tenant_rls(op: Any, table: str, **kwargs: Any) -> None:
    """Alembic helper: enable RLS on `table` when running on PostgreSQL."""
    if op.get_bind().dialect.name != "postgresql":
        return
    from services.settings import get_settings

    s = get_settings()
    for stmt in enable_tenant_rls_sql(table, s.db_app_role, s.db_operator_role, **kwargs):
        op.execute(stmt)


def create_roles(op: Any) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from services.settings import get_settings

    s = get_settings()
    for stmt in create_roles_sql(s.db_app_role, s.db_operator_role):
        op.execute(stmt)
