"""What row-level security costs on the hot queries.

For each query, three variants run interleaved:

* `rls`      — role `switchboard_app`, tenant in `app.agency_id`, NO agency filter in the SQL:
               the policy alone selects the tenant's rows (the second wall on its own);
* `explicit` — role `switchboard_operator` (policy `USING (true)`) with an explicit
               `agency_id = $1`: the same rows, the tenant filter written by hand, RLS inert;
* `app`      — what the application actually sends: role `switchboard_app` with RLS AND the
               ORM's explicit agency filter.

Each iteration opens a transaction, sets role and tenant exactly like `tenants.scoping`
(`set_config(..., true)`), and times only the round trip of the query itself. Iterations
rotate the order of the variants and the connection each one uses (three connections, each
with its own prepared statement per variant, so no statement is re-planned for another
role). The ratio
that is judged is p95(rls) / p95(explicit). `EXPLAIN ANALYZE` under RLS, and the generic plan
a long-lived prepared statement may switch to, show whether the tenant index is used.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import quantiles
from typing import Any

import asyncpg

from tests.bench.dataset import AgencyData

SET_SQL = (
    "SELECT set_config('role', $1, true), set_config('app.agency_id', $2, true), "
    "set_config('app.client_ids', $3, true)"
)
APP_ROLE = "switchboard_app"
OPERATOR_ROLE = "switchboard_operator"
MODES = ("rls", "explicit", "app")

CLIENT_COLS = (
    "created_at, updated_at, agency_id, id, legal_name, display_name, email, phone, "
    "website, street, city, region, postal_code, country, timezone, categories, "
    "hours, notes, lifecycle_stage, lifecycle_changed_at"
)
USER_COLS = (
    "created_at, updated_at, agency_id, id, email, name, password_hash, status, "
    "email_verified, last_login_at"
)
KEY_COLS = (
    "agency_id, id, name, key_hash, prefix, role, client_id, created_by, created_at, "
    "last_used_at, expires_at, revoked_at"
)
MEMBERSHIP_COLS = "agency_id, id, user_id, role, client_id, created_at"
AUDIT_COLS = (
    "agency_id, id, occurred_at, actor_type, actor_id, actor_label, action, "
    "target_type, target_id, client_id, data, request_id, ip, unscoped_reason"
)
SEARCH_COLUMNS = ("display_name", "legal_name", "email", "phone", "city", "website")
SEARCH_TERMS = ("bakery", "garage", "florist", "bistro", "yoga", "optician", "tailor", "cafe")
PAGE = 51  # the API's default page (50) plus the look-ahead row


@dataclass(frozen=True)
class Sample:
    agency: uuid.UUID
    client: uuid.UUID
    user: uuid.UUID
    email: str
    key_hash: str
    term: str


@dataclass(frozen=True)
class HotQuery:
    name: str
    label: str
    # SQL with `{tenant}` where the explicit filter goes ("" under RLS only); the tenant is
    # always the LAST parameter so the variants share their other parameters.
    template: str
    args: Callable[[Sample], tuple[Any, ...]]

    def sql(self, mode: str) -> str:
        """The statement of one variant, tagged with the variant: each connection prepares one
        statement per variant, and every prepared statement always runs under the same role
        (a role change would re-plan it)."""
        return f"/* {mode} */ {self._sql(mode)}"

    def _sql(self, mode: str) -> str:
        n = max((int(d) for d in re.findall(r"\$(\d+)", self.template)), default=0) + 1
        if mode == "rls":
            return self.template.format(tenant="", and_tenant="", where_tenant="")
        return self.template.format(
            tenant=f"agency_id = ${n}",
            and_tenant=f" AND agency_id = ${n}",
            where_tenant=f"WHERE agency_id = ${n} ",
        )

    def params(self, mode: str, s: Sample) -> tuple[Any, ...]:
        base = self.args(s)
        return base if mode == "rls" else (*base, s.agency)


def _search_template() -> str:
    ors = " OR ".join(f"lower({c}) LIKE '%' || $1 || '%'" for c in SEARCH_COLUMNS)
    return (
        f"SELECT {CLIENT_COLS} FROM clients WHERE ({ors}){{and_tenant}} "
        f"ORDER BY created_at DESC, id DESC LIMIT {PAGE}"
    )


HOT_QUERIES: tuple[HotQuery, ...] = (
    HotQuery(
        "client_by_id",
        "client by id",
        f"SELECT {CLIENT_COLS} FROM clients WHERE id = $1{{and_tenant}}",
        lambda s: (s.client,),
    ),
    HotQuery(
        "clients_page",
        "client list page (newest first)",
        f"SELECT {CLIENT_COLS} FROM clients {{where_tenant}}"
        f"ORDER BY created_at DESC, id DESC LIMIT {PAGE}",
        lambda s: (),
    ),
    HotQuery(
        "clients_search", "client search by name (q=...)", _search_template(), lambda s: (s.term,)
    ),
    HotQuery(
        "user_by_email",
        "user by e-mail",
        f"SELECT {USER_COLS} FROM users WHERE email = $1{{and_tenant}}",
        lambda s: (s.email,),
    ),
    HotQuery(
        "api_key_by_hash",
        "API key by hash",
        f"SELECT {KEY_COLS} FROM api_keys WHERE key_hash = $1{{and_tenant}}",
        lambda s: (s.key_hash,),
    ),
    HotQuery(
        "memberships_of_user",
        "memberships of a user",
        f"SELECT {MEMBERSHIP_COLS} FROM memberships WHERE user_id = $1{{and_tenant}} "
        "ORDER BY created_at",
        lambda s: (s.user,),
    ),
    HotQuery(
        "audit_page",
        "audit events page (newest first)",
        f"SELECT {AUDIT_COLS} FROM audit_events {{where_tenant}}"
        f"ORDER BY occurred_at DESC, id DESC LIMIT {PAGE}",
        lambda s: (),
    ),
)


@dataclass
class Plan:
    text: str
    indexes: list[str]
    tenant_index: bool  # an Index Cond on agency_id


@dataclass
class QueryResult:
    query: HotQuery
    timings_us: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None  # EXPLAIN ANALYZE under RLS only
    generic_plan: Plan | None = None  # the generic plan of a prepared statement, under RLS
    explicit_plan: Plan | None = None  # EXPLAIN ANALYZE of the explicit-filter baseline

    def pct(self, mode: str, p: int) -> float:
        return quantiles(self.timings_us[mode], n=100, method="inclusive")[p - 1]

    def ratio(self, p: int = 95, mode: str = "rls") -> float:
        return self.pct(mode, p) / self.pct("explicit", p)


def _role(mode: str) -> str:
    return OPERATOR_ROLE if mode == "explicit" else APP_ROLE


def _samples(agencies: Sequence[AgencyData], n: int, seed: int = 5) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ag = rng.choice(agencies)
        u = rng.randrange(len(ag.user_ids))
        out.append(
            Sample(
                ag.id,
                rng.choice(ag.client_ids),
                ag.user_ids[u],
                ag.user_emails[u],
                ag.key_hash,
                rng.choice(SEARCH_TERMS),
            )
        )
    return out


async def _timed(conn: asyncpg.Connection, q: HotQuery, mode: str, s: Sample) -> tuple[float, int]:
    async with conn.transaction():
        await conn.fetchval(SET_SQL, _role(mode), str(s.agency) if mode != "explicit" else "", "")
        t0 = time.perf_counter_ns()
        rows = await conn.fetch(q.sql(mode), *q.params(mode, s))
        t1 = time.perf_counter_ns()
    return (t1 - t0) / 1000, len(rows)


_INDEX_RE = re.compile(r"Index (?:Only )?Scan(?: Backward)? using (\w+)")


def _plan(lines: Sequence[str]) -> Plan:
    text = "\n".join(lines)
    tenant = any("Index Cond" in ln and "agency_id" in ln for ln in lines)
    return Plan(text, sorted(set(_INDEX_RE.findall(text))), tenant)


def _literal(v: Any) -> str:
    if isinstance(v, uuid.UUID):
        return f"'{v}'::uuid"
    return "'" + str(v).replace("'", "''") + "'"


async def _analyze(conn: asyncpg.Connection, q: HotQuery, mode: str, s: Sample) -> Plan:
    async with conn.transaction():
        await conn.fetchval(SET_SQL, _role(mode), str(s.agency) if mode != "explicit" else "", "")
        rows = await conn.fetch(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {q.sql(mode)}",
            *q.params(mode, s),
        )
    return _plan([r[0] for r in rows])


async def _generic(conn: asyncpg.Connection, q: HotQuery, s: Sample) -> Plan:
    sql, args = q.sql("rls"), q.params("rls", s)
    async with conn.transaction():
        await conn.fetchval(SET_SQL, APP_ROLE, str(s.agency), "")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE bench_generic AS {sql}")
        call = (
            f"EXECUTE bench_generic({', '.join(_literal(a) for a in args)})"
            if args
            else "EXECUTE bench_generic"
        )
        rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {call}")
        await conn.execute("DEALLOCATE bench_generic")
    return _plan([r[0] for r in rows])


def _shape(plan: Plan) -> str:
    """The plan's node types and indexes, without conditions, numbers or SubPlans (the
    client-scope policy's SubPlan is never executed for an agency-wide principal)."""
    nodes: list[str] = []
    skip_deeper_than: int | None = None
    for line in plan.text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        text = line.strip()
        if text.startswith("SubPlan"):
            skip_deeper_than = indent
            continue
        node = text.removeprefix("->").strip().split(" (")[0]
        if node and node[0].isupper() and ":" not in node and node != "Result":
            nodes.append(node.split(" on ")[0])
    return " > ".join(nodes)


async def _measure(
    conns: list[asyncpg.Connection],
    q: HotQuery,
    agencies: Sequence[AgencyData],
    iterations: int,
) -> QueryResult:
    res = QueryResult(q, {m: [] for m in MODES})
    samples = _samples(agencies, iterations + 30, seed=sum(map(ord, q.name)))
    n = len(conns)
    # warm-up: prepare every variant on every connection; and RLS must select exactly the
    # explicit filter's rows
    for i, s in enumerate(samples[:30]):
        counts = {m: (await _timed(conns[(k + i) % n], q, m, s))[1] for k, m in enumerate(MODES)}
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"{q.name}: the variants disagree on row counts {counts}")
        res.rows = counts
    # Each iteration rotates both the order of the variants and the connection (backend
    # process) each one runs on, so neither going first nor a backend that the scheduler
    # keeps on a busier core favours a variant.
    for i, s in enumerate(samples[30:]):
        for j in range(n):
            k = (i + j) % n
            us, _ = await _timed(conns[(k + i // n) % n], q, MODES[k], s)
            res.timings_us[MODES[k]].append(us)
    res.plan = await _analyze(conns[0], q, "rls", samples[0])
    res.explicit_plan = await _analyze(conns[0], q, "explicit", samples[0])
    res.generic_plan = await _generic(conns[0], q, samples[0])
    return res


def plan_differs(res: QueryResult) -> bool:
    assert res.plan is not None and res.explicit_plan is not None
    return _shape(res.plan) != _shape(res.explicit_plan)


def plan_summary(plan: Plan) -> str:
    return _shape(plan)


LARGE_PAGE = HotQuery(
    "clients_page_large",
    "client list page, large agency",
    HOT_QUERIES[1].template,
    HOT_QUERIES[1].args,
)


async def run(
    target_url: str,
    agencies: Sequence[AgencyData],
    large: AgencyData,
    iterations: int,
    log: Callable[[str], None] = print,
) -> list[QueryResult]:
    conns = [await asyncpg.connect(target_url) for _ in MODES]
    # Start from a clean slate: the data load and the throughput part leave dirty buffers,
    # and a checkpoint flushing them in the middle of a query's iterations puts stalls into
    # whichever variant happens to run then (the p95 of a 51-row page moved by ~10%).
    await conns[0].execute("CHECKPOINT")
    work: list[tuple[HotQuery, Sequence[AgencyData]]] = [(q, agencies) for q in HOT_QUERIES]
    work.append((LARGE_PAGE, [large]))
    try:
        results = []
        for q, pool in work:
            res = await _measure(conns, q, pool, iterations)
            results.append(res)
            assert res.plan is not None and res.generic_plan is not None
            log(
                f"  {q.name:20s} p95 rls {res.pct('rls', 95):7.1f} us  explicit "
                f"{res.pct('explicit', 95):7.1f} us  app {res.pct('app', 95):7.1f} us  "
                f"ratio {res.ratio():.3f}  tenant index "
                f"{'yes' if res.plan.tenant_index else 'NO'}"
                f"{' (plan differs from explicit)' if plan_differs(res) else ''}"
            )
        return results
    finally:
        for c in conns:
            await c.close()
