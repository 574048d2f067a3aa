"""The console table and docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.config import BenchConfig
from tests.bench.dataset import Dataset
from tests.bench.rls import MODES, QueryResult, plan_differs, plan_summary
from tests.bench.throughput import ThroughputResult
from tests.bench.tokens import (
    KEYCLOAK_MS,
    KEYCLOAK_REFRESH_PER_VCPU,
    TARGET_SERVER_MS,
    TokensResult,
)

THROUGHPUT_TARGET = 0.25  # app req/s ÷ bare req/s, at least
RLS_TARGET = 1.10  # p95 under RLS ÷ p95 with the explicit filter, at most
ANALYSIS_START, ANALYSIS_END = "<!-- analysis:start -->", "<!-- analysis:end -->"


@dataclass
class Report:
    cfg: BenchConfig
    machine: dict[str, str]
    versions: dict[str, str]
    dataset: Dataset
    throughput: ThroughputResult | None
    rls: list[QueryResult]
    phases: dict[str, float] = field(default_factory=dict)
    tokens: TokensResult | None = None

    @property
    def throughput_ok(self) -> bool | None:
        return None if self.throughput is None else self.throughput.ratio >= THROUGHPUT_TARGET

    def rls_failures(self) -> list[str]:
        return [r.query.name for r in self.rls if r.ratio() > RLS_TARGET]

    def no_tenant_index(self) -> list[str]:
        return [r.query.name for r in self.rls if r.plan is not None and not r.plan.tenant_index]


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


# ---- console -------------------------------------------------------------------------------


def console(rep: Report) -> str:
    out: list[str] = ["", "=" * 96]
    tp = rep.throughput
    if tp is not None:
        out += [
            f"Throughput  GET /api/v1/clients/{{id}}  ({tp.tool}, {tp.threads} thread(s), "
            f"{tp.connections} connections, {tp.duration_seconds}s x {tp.rounds} rounds, "
            f"{tp.workers} uvicorn workers each)",
            f"  {'server':6s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'server CPU':>11s} {'PG CPU':>7s} {'CPU ms/req':>11s}",
        ]
        for name in ("app", "bare"):
            rps = tp.median_rps(name)
            cpu = tp.median_cpu(name, "server")
            out.append(
                f"  {name:6s} {rps:10.1f} {tp.median_of(name, 'p50_ms'):8.2f} "
                f"{tp.median_of(name, 'p99_ms'):8.2f} {cpu:11.2f} "
                f"{tp.median_cpu(name, 'postgres'):7.2f} {1000 * cpu / rps:11.3f}"
            )
        out.append(
            f"  ratio app/bare = {tp.ratio:.3f}   target >= {THROUGHPUT_TARGET}   "
            f"{_verdict(rep.throughput_ok)}"
        )
        out.append("")
    if rep.rls:
        out.append("RLS overhead (latency of the query round trip, microseconds)")
        out.append(
            f"  {'query':22s} {'p50 rls':>8s} {'p50 expl':>9s} {'p95 rls':>8s} "
            f"{'p95 expl':>9s} {'p95 app':>8s} {'p95 ratio':>9s}  {'index':6s} verdict"
        )
        for r in rep.rls:
            assert r.plan is not None
            out.append(
                f"  {r.query.name:22s} {r.pct('rls', 50):8.1f} {r.pct('explicit', 50):9.1f} "
                f"{r.pct('rls', 95):8.1f} {r.pct('explicit', 95):9.1f} {r.pct('app', 95):8.1f} "
                f"{r.ratio():9.3f}  {'yes' if r.plan.tenant_index else 'NO':6s} "
                f"{_verdict(r.ratio() <= RLS_TARGET)}"
                f"{'  (plan differs)' if plan_differs(r) else ''}"
            )
        out.append(f"  target: p95 ratio <= {RLS_TARGET}")
    if rep.tokens is not None:
        out += _tokens_console(rep.tokens)
    out.append("=" * 96)
    return "\n".join(out)


# ---- markdown ------------------------------------------------------------------------------


def _preserved_analysis(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    if ANALYSIS_START in text and ANALYSIS_END in text:
        return text[text.index(ANALYSIS_START) + len(ANALYSIS_START) : text.index(ANALYSIS_END)]
    return ""


def markdown(rep: Report, previous: Path | None = None) -> str:
    cfg, m, tp, ds = rep.cfg, rep.machine, rep.throughput, rep.dataset
    lines: list[str] = [
        "# Benchmarks",
        "",
        f"Measured on {m['date']} by `make bench` (`python -m tests.bench"
        f"{' --quick' if cfg.quick else ''}`), which regenerates this file; the Analysis "
        "section between the markers is kept across runs. Everything below the summary is "
        "the output of one run.",
        "",
        "## Summary",
        "",
        "| Check | Target | Measured | Result |",
        "|---|---|---|---|",
    ]
    if tp is not None:
        lines.append(
            f"| Throughput of `GET /api/v1/clients/{{id}}`, app ÷ bare ASGI baseline | "
            f"≥ {THROUGHPUT_TARGET} | {tp.median_rps('app'):.0f} ÷ {tp.median_rps('bare'):.0f} "
            f"req/s = **{tp.ratio:.3f}** | **{_verdict(rep.throughput_ok)}** |"
        )
    for r in rep.rls:
        lines.append(
            f"| RLS overhead, {r.query.label}: p95 RLS ÷ p95 explicit filter | ≤ {RLS_TARGET} | "
            f"{r.pct('rls', 95):.0f} ÷ {r.pct('explicit', 95):.0f} µs = **{r.ratio():.3f}** | "
            f"**{_verdict(r.ratio() <= RLS_TARGET)}** |"
        )
    missing = rep.no_tenant_index()
    if rep.rls:
        lines.append(
            f"| Every RLS plan has an `Index Cond` on `agency_id` | all | "
            f"{len(rep.rls) - len(missing)}/{len(rep.rls)} | "
            f"**{'PASS' if not missing else 'FAIL: ' + ', '.join(missing)}** |"
        )
    if rep.tokens is not None:
        lines += _tokens_summary(rep.tokens)
    lines.append("")
    analysis = _preserved_analysis(previous) if previous else ""
    lines += [
        "## Analysis",
        "",
        ANALYSIS_START + (analysis or "\n_Not written yet._\n") + ANALYSIS_END,
        "",
    ]

    lines += [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPUs (`nproc`) | {m['cpus']} |",
        f"| CPU model (`/proc/cpuinfo`) | {m['cpu_model']} |",
        f"| Memory (`free -h`) | {m['memory']} |",
        f"| Kernel | {m['kernel']} |",
        f"| Load average at start | {m['loadavg']} |",
        f"| PostgreSQL | {m['postgres']} |",
        f"| Python | {m['python']} |",
        f"| Code measured (git) | {m.get('revision', '?')} |",
        "| Packages | " + ", ".join(f"{k} {v}" for k, v in rep.versions.items()) + " |",
        "",
        "The machine is shared with other work and noisy: the load generator, both servers and "
        "PostgreSQL all run on the same cores, and the *other* column below shows the CPU "
        "that other processes used during each run.",
        "",
        "## Data set",
        "",
        f"A fresh database `{cfg.db_name}`, migrated with the real Alembic chain "
        "(`infra.migrate.upgrade`), then bulk-loaded with binary `COPY` (asyncpg "
        "`copy_records_to_table`) as the superuser `postgres` in one transaction with "
        "`SET LOCAL row_security = off`. The restricted roles cannot be used for the load: "
        "PostgreSQL refuses `COPY FROM` for a role that row-level security applies to, and "
        "FORCE ROW LEVEL SECURITY applies it to the table owner too; a superuser bypasses it "
        "(and `row_security = off` makes the load fail loudly rather than write nothing if "
        "that ever changes). Then `VACUUM (ANALYZE)` on every table.",
        "",
        f"{cfg.agencies:,} agencies x {cfg.clients_per_agency} clients, plus one large agency "
        f"with {cfg.large_agency_clients:,} clients (to show how list queries scale with a "
        f"tenant's size). Per agency: {cfg.users_per_agency} users (1 owner, "
        f"{cfg.staff_per_agency} staff, the rest client owners) with memberships, "
        f"{cfg.assigned_share:.0%} of clients assigned to one staff member, "
        f"{cfg.audit_events_per_agency} audit events, and two API keys (one revoked) made by "
        "the application's own `make_api_key()`: `sbk_<agency>_<secret>`, SHA-256 of the "
        "whole key stored, so requests authenticate exactly like production.",
        "",
        "| Table | Rows |",
        "|---|---:|",
        *(f"| {t} | {n:,} |" for t, n in ds.rows.items()),
        "",
        f"Generation {ds.generate_seconds:.1f} s, COPY {ds.load_seconds:.1f} s, "
        f"VACUUM ANALYZE {ds.vacuum_seconds:.1f} s.",
        "",
    ]
    if tp is not None:
        lines += _throughput_md(rep, tp)
    if rep.rls:
        lines += _rls_md(rep)
    if rep.tokens is not None:
        lines += _tokens_md(rep, rep.tokens)
    lines += [
        "## Run",
        "",
        "| Phase | Seconds |",
        "|---|---:|",
        *(f"| {k} | {v:.1f} |" for k, v in rep.phases.items()),
        "",
    ]
    return "\n".join(lines)


def _throughput_md(rep: Report, tp: ThroughputResult) -> list[str]:
    cfg = rep.cfg
    lines = [
        "## Throughput: the application against a bare ASGI endpoint",
        "",
        "Endpoint: `GET /api/v1/clients/{id}` with `Authorization: Bearer <the agency's own "
        "API key>`, each request a random (agency, client) pair out of "
        f"{cfg.request_pairs:,} pre-generated ones (`tests/bench/requests.lua`).",
        "",
        "* **app**: the real application (`services.app:create_app`): API-key authentication "
        "(SHA-256 lookup inside the tenant), agency check, the session's tenant scoping and "
        "the per-transaction RLS role/tenant settings, the client query, the assigned-staff "
        "query, `ClientOut` validation, commit. `SWITCHBOARD_ENV=production`, "
        "`SWITCHBOARD_LOG_LEVEL=WARNING`.",
        "* **bare**: `tests/bench/bare.py`, a raw ASGI callable (no framework, no ORM, no "
        "authentication: the agency is read from the key's middle segment) that runs ONE "
        "statement on an asyncpg pool, the primary-key lookup `WHERE agency_id = $1 AND id = $2` "
        "with the assigned staff gathered in the same statement, and renders it with orjson. "
        "Before measuring, the bench checks on "
        f"{tp.verified_pairs} random requests that both return 200 and identical JSON bodies, "
        f"and that the app answers {tp.cross_tenant_status} to another agency's client.",
        "",
        f"Both servers: `python {tp.server_command}` (the bare one without `--factory`), "
        f"i.e. {tp.workers} worker processes each (= the number of cores), uvloop, httptools, "
        "no access log. They run side by side (an idle server costs nothing) against the same "
        "database, and are measured in alternating rounds (app, bare, then bare, app, ...) "
        "so that drift in the machine's background load hits both alike.",
        "",
        f"Load generator: {tp.tool} {tp.tool_version}: `{tp.command}`, i.e. "
        f"{tp.threads} thread, {tp.connections} keep-alive connections; a "
        f"{tp.warmup_seconds} s warm-up per server, then {tp.rounds} rounds of "
        f"{tp.duration_seconds} s per server. The load generator shares the "
        f"{rep.machine['cpus']} cores with the servers and PostgreSQL. CPU columns are cores "
        "used on average during the run (from /proc: server = the uvicorn process tree, "
        "PG = all postgres processes, other = everything else on the machine).",
        "",
        "| Round | Server | req/s | p50 ms | p99 ms | server CPU | PG CPU | wrk CPU "
        "| other CPU | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in tp.runs:
        lines.append(
            f"| {r.round} | {r.server} | {r.rps:.1f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.cpu['server']:.2f} | {r.cpu['postgres']:.2f} | {r.cpu['loadgen']:.2f} | "
            f"{r.cpu.get('other', 0.0):.2f} | {sum(r.errors.values())} |"
        )
    app_cpu = 1000 * tp.median_cpu("app", "server") / tp.median_rps("app")
    bare_cpu = 1000 * tp.median_cpu("bare", "server") / tp.median_rps("bare")
    app_pg = 1000 * tp.median_cpu("app", "postgres") / tp.median_rps("app")
    bare_pg = 1000 * tp.median_cpu("bare", "postgres") / tp.median_rps("bare")
    lines += [
        "",
        "| Median | req/s | p50 ms | p99 ms | server CPU ms / request | PG CPU ms / request |",
        "|---|---:|---:|---:|---:|---:|",
        f"| app | {tp.median_rps('app'):.1f} | {tp.median_of('app', 'p50_ms'):.2f} | "
        f"{tp.median_of('app', 'p99_ms'):.2f} | {app_cpu:.2f} | {app_pg:.3f} |",
        f"| bare | {tp.median_rps('bare'):.1f} | {tp.median_of('bare', 'p50_ms'):.2f} | "
        f"{tp.median_of('bare', 'p99_ms'):.2f} | {bare_cpu:.2f} | {bare_pg:.3f} |",
        "",
        f"**Ratio app ÷ bare = {tp.ratio:.3f}** (target ≥ {THROUGHPUT_TARGET}: "
        f"{_verdict(rep.throughput_ok)}).",
        "",
    ]
    return lines


def _rls_md(rep: Report) -> list[str]:
    lines = [
        "## Row-level security overhead",
        "",
        "Each hot query runs in three variants, interleaved: every iteration rotates the "
        "order of the variants and, every three iterations, the connection (PostgreSQL "
        "backend) each variant uses, so that neither going first nor a backend the scheduler "
        "keeps on a busier core favours one; each connection has its own prepared statement "
        "per variant, so no statement is ever re-planned for another role:",
        "",
        "* **rls**: `set_config('role', 'switchboard_app', true)` and "
        "`set_config('app.agency_id', <agency>, true)` in the transaction (exactly what "
        "`tenants.scoping` does) and NO agency filter in the SQL: the policy alone picks the "
        "tenant's rows;",
        "* **explicit**: role `switchboard_operator` (policy `USING (true)`) with an explicit "
        "`agency_id = $n`: the baseline, the same rows without RLS doing anything (FORCE RLS "
        "applies to the table owner too, so the owner is no baseline);",
        "* **app**: what the application really sends: RLS plus the ORM's explicit agency "
        "filter (for information).",
        "",
        f"{rep.cfg.rls_iterations:,} timed iterations per variant and query, random agency and "
        "parameters each iteration (the same for the three variants), after 20 warm-up "
        "iterations that also check that the three variants return the same number of rows. "
        "Timed: the round trip of the query statement only (asyncpg, prepared), not the "
        "BEGIN / set_config / COMMIT around it. The SQL mirrors the ORM statements of the "
        "repositories (same columns, ordering and page size 50 + 1).",
        "",
        "| Query | p50 rls µs | p50 explicit µs | p95 rls µs | p95 explicit µs | p95 app µs | "
        "p50 ratio | **p95 ratio** | Result | tenant index (RLS plan) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rep.rls:
        assert r.plan is not None
        idx = (
            ("yes: " + ", ".join(f"`{i}`" for i in r.plan.indexes))
            if r.plan.tenant_index
            else "**NO**"
        )
        lines.append(
            f"| {r.query.label} | {r.pct('rls', 50):.0f} | {r.pct('explicit', 50):.0f} | "
            f"{r.pct('rls', 95):.0f} | {r.pct('explicit', 95):.0f} | {r.pct('app', 95):.0f} | "
            f"{r.ratio(50):.3f} | **{r.ratio():.3f}** | "
            f"{_verdict(r.ratio() <= RLS_TARGET)} | {idx} |"
        )
    lines += [
        "",
        "### Plans",
        "",
        "Plan shapes (node types and indexes) under RLS, with the explicit filter, and the "
        "generic plan a prepared statement may switch to after five executions "
        "(`plan_cache_mode = force_generic_plan`, under RLS):",
        "",
        "| Query | RLS (EXPLAIN ANALYZE) | explicit filter | generic, RLS | same as explicit? |",
        "|---|---|---|---|---|",
    ]
    for r in rep.rls:
        assert r.plan and r.explicit_plan and r.generic_plan
        lines.append(
            f"| {r.query.name} | {plan_summary(r.plan)} | {plan_summary(r.explicit_plan)} | "
            f"{plan_summary(r.generic_plan)} | {'**no**' if plan_differs(r) else 'yes'} |"
        )
    lines.append("")
    for r in rep.rls:
        assert r.plan and r.explicit_plan
        lines += [
            f"<details><summary><code>{r.query.name}</code>: {r.query.label} "
            f"({r.rows.get('rls', 0)} rows)</summary>",
            "",
            "SQL under RLS:",
            "",
            "```sql",
            r.query.sql("rls"),
            "```",
            "",
            "EXPLAIN ANALYZE under RLS (role switchboard_app):",
            "",
            "```",
            r.plan.text,
            "```",
            "",
            "EXPLAIN ANALYZE with the explicit filter (role switchboard_operator):",
            "",
            "```",
            r.explicit_plan.text,
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


# ---- token endpoint -------------------------------------------------------------------------

_GRANT_LABELS = {
    "authorization_code": "code exchange",
    "refresh_token": "rotating refresh",
}


def _tokens_console(tk: TokensResult) -> list[str]:
    out = [
        "",
        f"Token endpoint  POST /a/{{slug}}/oauth2/token  ({tk.connections} connections, "
        f"{tk.rounds} x {tk.requests_per_round} requests per grant, {tk.workers} uvicorn "
        "workers; medians over the rounds)",
        f"  {'grant':20s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s} "
        f"{'server ms/req':>14s} {'PG ms/req':>10s} {'crypto us':>10s} {'x crypto':>9s}",
    ]
    for grant in ("authorization_code", "refresh_token"):
        if not tk.of(grant):
            continue
        out.append(
            f"  {grant:20s} {tk.median_of(grant, 'rps'):8.1f} {tk.median_of(grant, 'p50_ms'):8.1f} "
            f"{tk.median_of(grant, 'p99_ms'):8.1f} {tk.errors(grant):7d} "
            f"{tk.median_cpu_ms(grant, 'server'):14.2f} "
            f"{tk.median_cpu_ms(grant, 'postgres'):10.2f} "
            f"{tk.crypto_us(grant):10.0f} {tk.crypto_ratio(grant):9.1f}"
            f"   / target {TARGET_SERVER_MS:g} ms = {tk.target_ratio(grant):.2f} "
            f"{_verdict(tk.target_ok(grant))}, / Keycloak {KEYCLOAK_MS:.1f} ms = "
            f"{tk.keycloak_ratio(grant):.2f}"
        )
    v = tk.validation
    out.append(
        "ID-token validation (median us): "
        + "  ".join(f"{k} {m.median:.0f}" for k, m in v.items())
        + f"   strict (Authlib) / plain RS256 verify = {tk.validation_ratio():.2f}"
    )
    return out


def _tokens_summary(tk: TokensResult) -> list[str]:
    lines = []
    for grant in ("authorization_code", "refresh_token"):
        if not tk.of(grant):
            continue
        crypto = (
            "ID token + access token"
            if tk.crypto_us(grant) > tk.signing["access_token"].median
            else "access token"
        )
        cpu = tk.median_cpu_ms(grant, "server")
        lines.append(
            f"| Token endpoint, {_GRANT_LABELS[grant]} (`grant_type={grant}`): server CPU per "
            f"request ÷ {TARGET_SERVER_MS:g} ms (Keycloak's sizing: 1 vCPU per "
            f"{KEYCLOAK_REFRESH_PER_VCPU} refreshes/s = {KEYCLOAK_MS:.1f} ms) | ≤ 1 | "
            f"{cpu:.2f} ÷ {TARGET_SERVER_MS:g} ms = **{tk.target_ratio(grant):.2f}** "
            f"(÷ Keycloak's {KEYCLOAK_MS:.1f} ms = {tk.keycloak_ratio(grant):.2f}); "
            f"{tk.median_of(grant, 'rps'):.0f} req/s, p99 {tk.median_of(grant, 'p99_ms'):.0f} ms, "
            f"{tk.errors(grant)} errors; signing its {crypto}: {tk.crypto_us(grant) / 1000:.2f} ms "
            f"(= {tk.crypto_ratio(grant):.1f}x) | {_verdict(tk.target_ok(grant))} |"
        )
    v = tk.validation
    lines.append(
        "| ID-token validation, strict (Authlib `CodeIDToken`, cached JWKS): median per token "
        f"÷ one plain RS256 verify | none (informational) | {v['strict_authlib'].median:.0f} "
        f"÷ {v['rs256_verify'].median:.0f} µs = **{tk.validation_ratio():.2f}x** | measured |"
    )
    return lines


def _tokens_md(rep: Report, tk: TokensResult) -> list[str]:
    cfg = rep.cfg
    quick = " --quick" if cfg.quick else ""
    lines = [
        "## Token endpoint",
        "",
        "`POST /a/{slug}/oauth2/token` of the real application, the OpenID provider of one "
        f"agency of the data set (`{tk.agency_slug}`), for a confidential relying party "
        f"registered through the API (`POST /api/v1/oauth-clients`, first-party, "
        "`client_secret_basic`, scopes `openid profile email switchboard:memberships`). "
        "Measured by `tests/bench/tokens.py`; run this part alone with "
        f"`python -m tests.bench{quick} --only tokens`.",
        "",
        "* **Codes**: from the real authorization endpoint. The bench signs the agency's "
        f"{tk.users} people in through the portal's sign-in form (CSRF and all), then asks "
        "`GET /a/{slug}/oauth2/authorize` (PKCE S256, a fresh nonce each) for every code "
        "with their session cookies, round robin, 8 at a time "
        f"(about {tk.authorize_rps:.0f} codes/s), just before each round. Codes live "
        f"{tk.code_ttl_seconds} s for the bench server (`SWITCHBOARD_OAUTH2_CODE_TTL_SECONDS="
        f"{tk.code_ttl_seconds}`, the maximum; the default is 60 s) so that none expires "
        "while a round is being prepared.",
        "* **authorization_code**: `grant_type=authorization_code`, `code`, `redirect_uri`, "
        "`code_verifier`, client authenticated with HTTP Basic; every code is used exactly "
        "once. The answer carries an access token (RS256 JWT), an ID token (RS256) and a "
        "refresh token.",
        "* **refresh_token**: `grant_type=refresh_token` with the refresh tokens the "
        "measured code exchanges of the same round returned, each used exactly once (every "
        "use rotates it: the old one is marked used, a new one issued).",
        "",
        f"Server: `python {tk.server_command}` ({tk.workers} workers, uvloop, httptools), "
        "`SWITCHBOARD_ENV=production`, `SWITCHBOARD_BASE_URL=https://id.bench.example` "
        "(the issuer's public URL: Authlib refuses a plain-http one in production; the bench "
        "talks plain HTTP to 127.0.0.1 as a TLS-terminating proxy would).",
        "",
        f"Load generator: `python {tk.loadgen_command}` (the `main()` of "
        "`tests/bench/tokens.py`): one asyncio process (uvloop), "
        f"{tk.connections} keep-alive connections, each taking the next request of the file "
        "as soon as its previous answer arrived, so every request is sent exactly once; "
        "req/s = requests ÷ the time from the first request to the last answer. "
        f"{tk.warmup_requests} requests per grant to warm up, then {tk.rounds} round(s) of "
        f"{tk.requests_per_round} per grant (code exchange, then refresh). CPU columns: cores "
        "used on average over the measured window (from /proc: server = the uvicorn process "
        "tree, PG = all postgres processes, other = everything else on the machine); CPU "
        "ms / request = CPU seconds ÷ requests. On this shared machine the server's CPU per "
        "request grows with what the other processes use (compare the rounds), and PG CPU "
        "is approximate (the postgres processes of other work on the machine come and go).",
        "",
        f"Checked before measuring (load average {tk.loadavg_start} at the start of this part, "
        f"{tk.loadavg_end} at its end):",
        "",
        *(f"* {c}" for c in tk.checks),
        "",
        "| Round | Grant | req/s | p50 ms | p99 ms | errors | server CPU | PG CPU | "
        "loadgen CPU | other CPU | server CPU ms / request | PG CPU ms / request |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in tk.runs:
        lines.append(
            f"| {r.round} | {r.grant} | {r.rps:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | "
            f"{r.errors} | {r.cpu['server']:.2f} | {r.cpu['postgres']:.2f} | "
            f"{r.cpu['loadgen']:.2f} | {r.cpu.get('other', 0.0):.2f} | "
            f"{r.cpu_ms('server'):.2f} | {r.cpu_ms('postgres'):.2f} |"
        )
    if tk.error_samples:
        lines += ["", "Failed requests (first few):", ""]
        lines += [f"* `{e[:300]}`" for e in tk.error_samples]
    s = tk.signing
    lines += [
        "",
        "**The unavoidable crypto**, measured in the bench process between the rounds "
        f"({s['id_token'].n:,} times each, interleaved; the server idle): the ID token and "
        "the access token of a real code-exchange response re-signed with the same header "
        "and claims and the agency's own RS256 key (RSA-2048, decrypted from the database "
        f"as `services/oauth2/keys.py` does), with joserfc as the provider does. ID token "
        f"{tk.id_token_bytes} bytes, access token {tk.access_token_bytes} bytes.",
        "",
        "| Operation | median µs | p90 µs |",
        "|---|---:|---:|",
        *(f"| {m.label} | {m.median:.0f} | {m.pct(90):.0f} |" for m in s.values()),
        "",
        "| Median over the rounds | req/s | p50 ms | p99 ms | errors | server CPU ms / "
        "request | PG CPU ms / request | signing it needs µs | **server CPU ÷ signing** |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for grant in ("authorization_code", "refresh_token"):
        if not tk.of(grant):
            continue
        lines.append(
            f"| {grant} | {tk.median_of(grant, 'rps'):.1f} | {tk.median_of(grant, 'p50_ms'):.1f} "
            f"| {tk.median_of(grant, 'p99_ms'):.1f} | {tk.errors(grant)} | "
            f"{tk.median_cpu_ms(grant, 'server'):.2f} | {tk.median_cpu_ms(grant, 'postgres'):.2f} "
            f"| {tk.crypto_us(grant):.0f} | **{tk.crypto_ratio(grant):.1f}x** |"
        )
    lines.append("")
    for grant in ("authorization_code", "refresh_token"):
        if tk.of(grant):
            lines.append(
                f"* **{grant}: {tk.median_cpu_ms(grant, 'server'):.2f} ms server CPU per request "
                f"÷ target {TARGET_SERVER_MS:g} ms = {tk.target_ratio(grant):.2f} "
                f"({_verdict(tk.target_ok(grant))})**; ÷ Keycloak's {KEYCLOAK_MS:.1f} ms (its "
                f"sizing guide: one vCPU per {KEYCLOAK_REFRESH_PER_VCPU} refresh-token requests/s) "
                f"= {tk.keycloak_ratio(grant):.2f}."
            )
    v = tk.validation
    base = v["rs256_verify"].median
    lines += [
        "",
        (
            "The refresh grant signs an access token and a new ID token (OpenID Connect Core "
            "§12.2), like the code exchange."
            if tk.refresh_has_id_token
            else "The refresh grant signs an access token only (its answer carries no ID token)."
        )
        + " The rest of the server CPU is the framework, Authlib, the ORM and the driver: "
        "the ratio says how many times the unavoidable signing each request costs.",
        "",
        "### ID-token validation",
        "",
        "What a relying party pays per sign-in to check the ID token it got: real ID tokens "
        f"from the measured code exchanges ({v['rs256_verify'].n:,} validations per variant, "
        f"cycling through {tk.validation_tokens:,} of them, variants interleaved in rotating "
        "order, in the bench process, timed one by one with `perf_counter_ns`). The key set "
        "comes from the agency's `jwks.json`, the expected issuer from its discovery "
        "document. Strict validation was checked to refuse a wrong nonce, another audience, "
        "a forged signature and another access token (`at_hash`).",
        "",
        "| Variant | median µs | p90 µs | ÷ plain RS256 verify |",
        "|---|---:|---:|---:|",
        *(
            f"| {m.label} | {m.median:.0f} | {m.pct(90):.0f} | {m.median / base:.2f} |"
            for m in v.values()
        ),
        "",
    ]
    return lines


__all__ = ["MODES", "Report", "console", "markdown"]
