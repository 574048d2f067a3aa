"""The second wall: PostgreSQL row-level security, checked with raw SQL as the app role."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import PG_ADMIN_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (SWITCHBOARD_TEST_PG_URL)"),
]


def _tenant_tables() -> list[str]:
    """Every table the application defines: each one must carry RLS (no hand-kept list)."""
    from services.models_registry import metadata

    return sorted(metadata.tables)


TENANT_TABLES = _tenant_tables()


def _key(table: str) -> str:
    return "id" if table == "agencies" else "agency_id"


async def _as_app(conn, agency=None, clients=None):
    """Become what the application becomes in a transaction: the agency-wide role, or the
    client-scoped role when a client scope is given."""
    role = "switchboard_client" if clients else "switchboard_app"
    await conn.execute(
        text(
            "SELECT set_config('role', :r, true), "
            "set_config('app.agency_id', :a, true), set_config('app.client_ids', :c, true)"
        ),
        {"r": role, "a": str(agency) if agency else "", "c": clients or ""},
    )


async def _two_agencies(make_agency, make_client):
    a, b = await make_agency(), await make_agency()
    for ag in (a, b):
        await make_client(ag, legal_name="One")
        await make_client(ag, legal_name="Two")
    return a, b


async def test_every_tenant_table_forces_rls_and_app_role_is_restricted(client):
    from services.kit.db import get_engine

    assert {"clients", "users", "audit_events", "api_keys"} <= set(TENANT_TABLES)
    async with get_engine().connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity, "
                    "pg_get_userbyid(relowner) "
                    "FROM pg_class WHERE relname = ANY(:t) AND relkind = 'r'"
                ),
                {"t": TENANT_TABLES},
            )
        ).all()
        assert {r[0] for r in rows} == set(TENANT_TABLES)
        assert all(r[1] and r[2] for r in rows), [r for r in rows if not (r[1] and r[2])]
        assert all(r[3] != "switchboard_app" for r in rows)
        roles = (
            await conn.execute(
                text(
                    "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles "
                    "WHERE rolname IN ('switchboard_app', 'switchboard_client', "
                    "'switchboard_operator') ORDER BY rolname"
                )
            )
        ).all()
        assert [tuple(r) for r in roles] == [
            ("switchboard_app", False, False, False),
            ("switchboard_client", False, False, False),
            ("switchboard_operator", False, False, False),
        ]
        # agency-wide sessions carry one policy per table: the tenant (plans stay optimal)
        extra = (
            await conn.execute(
                text(
                    "SELECT tablename, policyname FROM pg_policies "
                    "WHERE 'switchboard_app' = ANY(roles) AND policyname <> 'tenant_isolation'"
                )
            )
        ).all()
        assert extra == []


async def test_app_role_with_agency_a_sees_nothing_of_b(client, make_agency, make_client):
    from services.kit.db import get_engine

    a, b = await _two_agencies(make_agency, make_client)
    async with get_engine().connect() as conn, conn.begin():
        await _as_app(conn, a.id)
        for table in TENANT_TABLES:
            foreign = (
                await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {_key(table)} <> :a"), {"a": a.id}
                )
            ).scalar_one()
            assert foreign == 0, table
        mine = (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one()
        assert mine == 2
        with pytest.raises(DBAPIError):  # WITH CHECK: cannot write into another tenant
            async with conn.begin_nested():
                await conn.execute(
                    text(
                        "INSERT INTO clients (agency_id, id, legal_name, display_name, timezone, "
                        "categories, hours, lifecycle_stage, lifecycle_changed_at, created_at, "
                        "updated_at) VALUES (:b, gen_random_uuid(), 'x', 'x', 'UTC', '[]', '{}', "
                        "'prospect', now(), now(), now())"
                    ),
                    {"b": b.id},
                )


async def test_no_agency_set_sees_zero_rows(client, make_agency, make_client):
    from services.kit.db import get_engine

    await _two_agencies(make_agency, make_client)
    async with get_engine().connect() as conn, conn.begin():
        await _as_app(conn, None)
        for table in TENANT_TABLES:
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0


async def test_audit_log_is_append_only_for_the_app(client, make_agency, make_client):
    from services.kit.db import get_engine

    a, _ = await _two_agencies(make_agency, make_client)
    async with get_engine().connect() as conn:
        for stmt in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with conn.begin():
                    await _as_app(conn, a.id)
                    await conn.execute(text(stmt))


async def test_client_scope_is_enforced_by_rls_too(client, make_agency, make_client):
    from services.kit import ids
    from services.kit.db import get_engine

    agency = await make_agency()
    x = await make_client(agency, legal_name="X")
    await make_client(agency, legal_name="Y")
    x_id = ids.decode("cli", x["id"])
    async with get_engine().connect() as conn, conn.begin():
        await _as_app(conn, agency.id, "{" + str(x_id) + "}")
        names = (await conn.execute(text("SELECT display_name FROM clients"))).scalars().all()
        assert names == ["X"]
        # the owner has no membership on X: client-scoped sessions do not see agency staff
        assert (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0
        assert (
            await conn.execute(text("SELECT count(*) FROM audit_events WHERE client_id IS NULL"))
        ).scalar_one() == 0


async def test_pooled_connection_keeps_no_tenant_after_error(client, make_agency, make_client):
    """One pooled connection: tenant A, an exception mid-transaction, then reuse with no
    tenant and with tenant B, plus a session-level SET injected on purpose."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from services.settings import get_settings

    a, b = await _two_agencies(make_agency, make_client)
    engine = create_async_engine(get_settings().async_database_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(DBAPIError):
            async with engine.connect() as conn, conn.begin():
                await _as_app(conn, a.id)
                assert (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 2
                await conn.execute(text("SELECT 1/0"))
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            state = (
                await conn.execute(
                    text("SELECT current_user, current_setting('app.agency_id', true)")
                )
            ).one()
            assert state[0] != "switchboard_app" and not state[1]
            await conn.commit()
            async with conn.begin():
                await _as_app(conn, None)
                assert (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 0
            # someone sets the tenant at session level: the per-transaction setting wins
            await conn.execute(text(f"SET app.agency_id = '{a.id}'"))
            await conn.commit()
            async with conn.begin():
                await _as_app(conn, b.id)
                ids = (
                    (await conn.execute(text("SELECT DISTINCT agency_id FROM clients")))
                    .scalars()
                    .all()
                )
                assert [str(i) for i in ids] == [str(b.id)]
                assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
    finally:
        await engine.dispose()


async def test_orm_sessions_run_as_the_app_role(client, make_agency):
    """The application's own sessions drop to the restricted role in every transaction."""
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    a = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(a.id))
        row = (
            await session.execute(
                text("SELECT current_user, current_setting('app.agency_id', true)")
            )
        ).one()
    assert row[0] == "switchboard_app" and row[1] == str(a.id)


async def test_rls_lets_a_client_scoped_person_see_their_own_user_row(
    client, make_agency, make_client
):
    from services.kit import ids
    from services.kit.db import get_engine

    agency = await make_agency()
    x = ids.decode("cli", (await make_client(agency, legal_name="X"))["id"])
    owner = ids.decode("usr", agency.owner_user_id)
    async with get_engine().connect() as conn, conn.begin():
        await _as_app(conn, agency.id, "{" + str(x) + "}")
        assert (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0
        await conn.execute(text("SELECT set_config('app.user_id', :u, true)"), {"u": str(owner)})
        seen = (await conn.execute(text("SELECT id FROM users"))).scalars().all()
        assert seen == [owner]


async def test_client_scoped_sessions_append_agency_level_audit_events(client, make_agency):
    """A client user's own actions (sign-out) produce events with no client: appending them
    is allowed; reading them back is not."""
    from services.kit.db import get_engine

    agency = await make_agency()
    async with get_engine().connect() as conn, conn.begin():
        await _as_app(conn, agency.id, "{00000000-0000-0000-0000-000000000001}")
        await conn.execute(
            text(
                "INSERT INTO audit_events (agency_id, id, occurred_at, actor_type, actor_label, "
                "action, target_type, data) VALUES (:a, gen_random_uuid(), now(), 'user', 'x', "
                "'auth.logout', 'user', '{}')"
            ),
            {"a": agency.id},
        )
        seen = (
            await conn.execute(
                text("SELECT count(*) FROM audit_events WHERE action = 'auth.logout'")
            )
        ).scalar_one()
        assert seen == 0


async def test_the_app_login_has_nothing_after_reset_role(client, make_agency, make_client):
    """PostgREST's authenticator: the application's login is NOINHERIT and owns nothing, so
    `RESET ROLE` (or `SET ROLE NONE`) inside a transaction gives back no privilege at all: no
    tenant table is readable, no owner power, and no way to the operator role."""
    from services.kit.db import get_engine
    from services.settings import get_settings
    from tests.conftest import PG_APP_LOGIN

    a, _ = await _two_agencies(make_agency, make_client)
    async with get_engine().connect() as conn:
        who = (await conn.execute(text("SELECT session_user, current_user"))).one()
        assert tuple(who) == (PG_APP_LOGIN, PG_APP_LOGIN)
        await conn.rollback()
        for table in TENANT_TABLES:
            with pytest.raises(DBAPIError, match="permission denied"):
                async with conn.begin():
                    await _as_app(conn, a.id)
                    await conn.execute(text("RESET ROLE"))
                    await conn.execute(text(f"SELECT count(*) FROM {table}"))
        for stmt in (
            "ALTER TABLE clients DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE clients NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON clients",
            "GRANT SELECT ON clients TO PUBLIC",
            f"SET ROLE {get_settings().db_operator_role}",
            "SET ROLE postgres",
            f"SET ROLE {get_settings().owner_url.username}",
        ):
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"):
                async with conn.begin():
                    await conn.execute(text("RESET ROLE"))
                    await conn.execute(text(stmt))


async def test_operator_work_runs_on_its_own_login(client, make_agency):
    """`unscoped()` runs on the operator's login and pool; the rest of the unit of work stays
    on the application's login, in the tenant."""
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant, unscoped
    from tests.conftest import PG_APP_LOGIN, PG_OPERATOR_LOGIN

    a = await make_agency()
    who = text("SELECT session_user, current_user")
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(a.id))
        before = tuple((await session.execute(who)).one())
        async with unscoped(session, "test: which login"):
            inside = tuple((await session.execute(who)).one())
            total = (await session.execute(text("SELECT count(*) FROM agencies"))).scalar_one()
        after = tuple((await session.execute(who)).one())
    assert before == after == (PG_APP_LOGIN, "switchboard_app")
    assert inside == (PG_OPERATOR_LOGIN, "switchboard_operator")
    assert total >= 1


def test_startup_refuses_a_privileged_login_in_production():
    """The owner's (superuser) login is refused in production unless explicitly allowed; the
    application's own login passes."""
    from services.settings import Settings, get_settings
    from tenants.rls import check_app_login, refuse_privileged_login

    current = get_settings()
    assert check_app_login(current) == []
    owner_url = current.owner_url.render_as_string(hide_password=False)
    common = {"secret_key": "s" * 40, "var_dir": current.var_dir}
    owner = Settings(env="production", database_url=owner_url, **common)
    assert any("superuser" in p for p in check_app_login(owner))
    with pytest.raises(RuntimeError, match="superuser"):
        refuse_privileged_login(owner)
    refuse_privileged_login(
        Settings(env="production", database_url=owner_url, allow_privileged_db_login=True, **common)
    )
    app = Settings(
        env="production",
        database_url=current.url.render_as_string(hide_password=False),
        **common,
    )
    refuse_privileged_login(app)
    # a login that can switch to the operator role is refused too
    operator = Settings(
        env="production",
        database_url=current.operator_url.render_as_string(hide_password=False),
        **common,
    )
    assert any("switch to" in p for p in check_app_login(operator))
