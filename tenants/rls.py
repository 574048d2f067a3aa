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


# ---- Logins: PostgREST's authenticator pattern ---------------------------------------------
#
# The roles above are NOLOGIN. Two logins connect: the application's (`database_url`), a
# NOINHERIT role that owns nothing and may only switch to the app and client roles, so that
# after `RESET ROLE` it holds no privilege at all; and the operator's
# (`operator_database_url`), which may also switch to the operator role. Both are created
# or brought up to date by `switchboard db roles` (also run by `switchboard db upgrade`),
# connected as the schema owner; their names and passwords are read from those two URLs.

_LOGIN_ATTRS = "LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"


def login_roles_plan(
    settings: Any,
) -> list[tuple[str, str | None, tuple[str, ...], tuple[str, ...]]]:
    """(login, password, roles it may switch to, roles it must not reach) for each login
    that is not the schema owner itself."""
    app, client, operator = settings.db_app_role, settings.db_client_role, settings.db_operator_role
    owner = settings.owner_url.username
    plan: list[tuple[str, str | None, tuple[str, ...], tuple[str, ...]]] = []
    app_login = settings.url.username
    if app_login and app_login != owner:
        plan.append((app_login, settings.url.password, (app, client), (operator,)))
    op_login = settings.operator_url.username
    if op_login and op_login not in (owner, app_login):
        plan.append((op_login, settings.operator_url.password, (operator, app, client), ()))
    return plan


def ensure_login_roles(settings: Any) -> list[str]:
    """Create or update the application's and the operator's logins (idempotent; re-run it
    to rotate a password). Connects as the schema owner. Returns the logins it handled."""
    import psycopg
    from psycopg import sql

    if not settings.is_postgres:
        return []
    plan = login_roles_plan(settings)
    if not plan:
        return []
    dsn = settings.owner_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        can = conn.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not (can and can[0]):
            import structlog

            structlog.get_logger("switchboard.tenancy").warning(
                "db.roles_not_managed",
                detail="the owner has no CREATEROLE: create the logins as docs/operations.md says",
            )
            return []
        for login, password, grants, denied in plan:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            stmt = sql.SQL(verb + " ROLE {} " + _LOGIN_ATTRS).format(sql.Identifier(login))
            if password:
                stmt = stmt + sql.SQL(" PASSWORD {}").format(sql.Literal(password))
            conn.execute(stmt)
            for role in grants:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login))
                )
            for role in denied:
                member = conn.execute(
                    "SELECT pg_has_role(%s, %s, 'MEMBER')", (login, role)
                ).fetchone()
                if member and member[0]:
                    conn.execute(
                        sql.SQL("REVOKE {} FROM {}").format(
                            sql.Identifier(role), sql.Identifier(login)
                        )
                    )
    return [login for login, *_ in plan]


_LOGIN_CHECK = """
SELECT
  r.rolsuper,
  r.rolbypassrls,
  ARRAY(SELECT o.rolname FROM pg_roles o
        WHERE o.oid <> r.oid AND (o.rolsuper OR o.rolbypassrls OR o.rolname = %(operator)s)
          AND pg_has_role(r.oid, o.oid, 'MEMBER') ORDER BY 1),
  ARRAY(SELECT c.relname::text FROM pg_class c
        WHERE c.relname = ANY(%(tables)s) AND c.relkind IN ('r', 'p')
          AND pg_has_role(r.oid, c.relowner, 'MEMBER') ORDER BY 1)
FROM pg_roles r WHERE r.rolname = session_user
"""


def login_problems(conn: Any, operator_role: str, tables: list[str]) -> list[str]:
    """What makes the login of a psycopg connection unfit for the application: superuser,
    BYPASSRLS, a table owner one SET ROLE away, or a way to the operator role."""
    row = conn.execute(_LOGIN_CHECK, {"operator": operator_role, "tables": tables}).fetchone()
    if row is None:
        return ["the login is not a known role"]
    superuser, bypass, reachable, owned = row
    problems = []
    if superuser:
        problems.append("the login is a superuser")
    if bypass:
        problems.append("the login bypasses row-level security")
    if reachable:
        problems.append("the login can switch to " + ", ".join(reachable))
    if owned:
        shown = ", ".join(owned[:5]) + (" ..." if len(owned) > 5 else "")
        problems.append(f"the login owns (or can act as the owner of) tenant tables: {shown}")
    return problems


def check_app_login(settings: Any) -> list[str]:
    """Connect as the application's login and list what is wrong with it (PostgreSQL)."""
    import psycopg

    # Every table module is loaded by now (the app, the worker and the CLI import them all);
    # the kernel reads the shared metadata, not the registry above it.
    from services.kit.models import metadata

    if not settings.is_postgres:
        return []
    dsn = settings.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return login_problems(conn, settings.db_operator_role, sorted(metadata.tables))


def refuse_privileged_login(settings: Any) -> None:
    """At start-up: in production, refuse to run on a login that keeps owner or operator
    powers one `RESET ROLE` away, unless `allow_privileged_db_login` says so (logged)."""
    import structlog

    problems = check_app_login(settings)
    if not problems:
        return
    log = structlog.get_logger("switchboard.tenancy")
    if settings.env == "production" and not settings.allow_privileged_db_login:
        raise RuntimeError(
            "SWITCHBOARD_DATABASE_URL's login is not fit for the application: "
            + "; ".join(problems)
            + ". Create the application's own login with `switchboard db roles` (see "
            "docs/operations.md), or set SWITCHBOARD_ALLOW_PRIVILEGED_DB_LOGIN=true."
        )
    log.warning("db.privileged_login", problems=problems, env=settings.env)
