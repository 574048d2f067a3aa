"""How many SQL statements a token request sends (issue 7 §6): the token endpoint's cost was
mostly ORM round trips, so their number per grant is pinned here. A count, not a timing: the
figures are the same on every machine (SQLite and PostgreSQL alike), and a change that adds a
statement to the hot path has to say so by raising them.

Counted: every statement the application's engine sends while the request runs, from the
agency's lookup to the COMMIT (BEGIN and COMMIT themselves are not statements here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event

from services.kit.db import get_engine

# The budgets (see docs/benchmarks.md, "Token endpoint"), in the steady state (issuer, relying
# party and signing key cached). Before issue 7 §6, on PostgreSQL: a code exchange sent 12
# statements and a refresh 12 (9 and 9 on SQLite).
# Code exchange: claim the code (UPDATE ... RETURNING), the person with their memberships
# (checked by the grant, listed in the ID token), INSERT both tokens. Refresh: the same,
# claiming the refresh token.
CODE_EXCHANGE_STATEMENTS = 3
REFRESH_STATEMENTS = 3
# PostgreSQL only: the transaction's RLS role and tenant (`set_config`, tenants/scoping.py).
RLS_SETTINGS = 1


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []
    engine = get_engine().sync_engine

    def count(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append(" ".join(statement.split())[:160])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _report(name: str, seen: list[str]) -> str:
    return f"{name}: {len(seen)} statements\n  " + "\n  ".join(seen)


async def test_code_exchange_and_refresh_stay_within_their_statement_budget(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    # warm: the agency's first signing key (created in the first exchange) is cached once
    # a later request has read it back committed
    warm = await oidc.tokens(rp, b)
    assert (await oidc.refresh(rp, warm["refresh_token"])).status_code == 200
    code, _ = await oidc.code(b, rp)
    with statements() as exchange:
        resp = await oidc.exchange(rp, code)
    assert resp.status_code == 200, resp.text
    first = resp.json()
    with statements() as refresh:
        resp = await oidc.refresh(rp, first["refresh_token"])
    assert resp.status_code == 200, resp.text
    print(_report("code exchange", exchange))
    print(_report("refresh", refresh))
    extra = RLS_SETTINGS if get_engine().dialect.name == "postgresql" else 0
    assert len(exchange) <= CODE_EXCHANGE_STATEMENTS + extra, _report("code exchange", exchange)
    assert len(refresh) <= REFRESH_STATEMENTS + extra, _report("refresh", refresh)
