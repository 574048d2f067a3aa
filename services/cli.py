"""The `switchboard` command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Annotated, Any

import typer

from services.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Switchboard: run and manage.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
agency_app = typer.Typer(no_args_is_help=True, help="Agencies (platform operator).")
apikey_app = typer.Typer(no_args_is_help=True, help="Agency API keys.")
scim_token_app = typer.Typer(no_args_is_help=True, help="SCIM provisioning tokens.")
app.add_typer(db_app, name="db")
app.add_typer(agency_app, name="agency")
app.add_typer(apikey_app, name="apikey")
app.add_typer(scim_token_app, name="scim-token")
outbox_app = typer.Typer(no_args_is_help=True, help="E-mail the platform sent (the outbox).")
app.add_typer(outbox_app, name="outbox")
oauth2_app = typer.Typer(no_args_is_help=True, help="The agencies' OpenID Connect providers.")
app.add_typer(oauth2_app, name="oauth2")
sandbox_app = typer.Typer(
    no_args_is_help=True, help="Local fakes of the vendors' APIs, for the demo and the tests."
)
app.add_typer(sandbox_app, name="sandbox")


@app.callback()
def _main() -> None:
    """Logs go to stderr (JSON unless SWITCHBOARD_LOG_JSON=false); stdout is for results."""
    from services.kit.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply migrations as the schema owner (the schema and, on PostgreSQL, the RLS roles),
    then bring the application's and the operator's logins up to date (`db roles`)."""
    from infra.migrate import upgrade

    upgrade(revision)
    typer.echo(
        f"database at {revision} ({get_settings().owner_url.render_as_string(hide_password=True)})"
    )


@db_app.command("roles")
def db_roles() -> None:
    """Create or update the application's and the operator's PostgreSQL logins (idempotent;
    run it again to rotate a password). Connects as SWITCHBOARD_OWNER_DATABASE_URL; names and
    passwords come from SWITCHBOARD_DATABASE_URL and SWITCHBOARD_OPERATOR_DATABASE_URL."""
    import services.models_registry  # noqa: F401  (every table, for the ownership check)
    from infra.migrate import ensure_roles
    from tenants.rls import check_app_login

    settings = get_settings()
    if not settings.is_postgres:
        typer.echo("SQLite: no database roles")
        return
    done = ensure_roles()
    typer.echo("logins up to date: " + (", ".join(done) if done else "none (one login in use)"))
    problems = check_app_login(settings)
    if problems:
        typer.secho("warning: " + "; ".join(problems), fg=typer.colors.YELLOW, err=True)


async def _create_agency(slug: str, name: str, email: str, password: str | None) -> dict[str, Any]:
    import tenants  # noqa: F401
    from services.agencies import service
    from services.agencies.schemas import AgencyCreate
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.principal import Principal

    data = AgencyCreate(slug=slug, name=name, admin_email=email, admin_password=password)
    async with unit_of_work() as session:
        session.info["principal"] = Principal.operator()
        made = await service.onboard(session, data)
    return {
        "agency_id": ids.encode("agy", made.agency.id),
        "slug": made.agency.slug,
        "api_key": made.api_key,
        "owner_email": made.owner.email,
    }


@agency_app.command("create")
def agency_create(
    slug: Annotated[str, typer.Option(help="URL name: /a/<slug>/")],
    name: Annotated[str, typer.Option(help="display name")],
    admin_email: Annotated[str, typer.Option(help="the owner's e-mail")],
    admin_password: Annotated[str | None, typer.Option(help="the owner's password")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create an agency, its owner account and an admin API key."""
    from pydantic import ValidationError

    from services.kit.errors import SwitchboardError

    try:
        out = asyncio.run(_create_agency(slug, name, admin_email, admin_password))
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2)
    except SwitchboardError as exc:
        _fail(exc.detail, 2 if exc.status < 500 else 1)
    if as_json:
        typer.echo(json.dumps({k: out[k] for k in ("agency_id", "slug", "api_key")}))
        return
    typer.echo(f"agency {out['slug']} created ({out['agency_id']})")
    typer.echo(f"owner:   {out['owner_email']}")
    typer.echo(f"API key: {out['api_key']}   (shown once)")


async def _as_agency_owner(session: Any, slug: str) -> Any:
    """Operator work inside one agency: find it by slug (the one bypass), then act in it."""
    from services.agencies import repository as agencies
    from services.kit.errors import NotFound
    from tenants.principal import Principal
    from tenants.scoping import scope_to, unscoped

    async with unscoped(session, "operator CLI: find agency by slug"):
        agency = await agencies.by_slug(session, slug)
    if agency is None:
        raise NotFound(f"no agency with slug {slug!r}")
    principal = Principal.acting_in(agency.id, agency.slug, "platform operator (CLI)")
    await scope_to(session, principal)
    return principal


async def _create_key(slug: str, name: str) -> dict[str, Any]:
    import tenants  # noqa: F401
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work

    async with unit_of_work() as session:
        principal = await _as_agency_owner(session, slug)
        key, raw = await identity.create_api_key(session, principal, name=name)
    return {"api_key_id": ids.encode("key", key.id), "slug": slug, "api_key": raw}


@apikey_app.command("create")
def apikey_create(
    agency: Annotated[str, typer.Option(help="the agency's slug")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "CLI key",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create an agency-wide admin API key."""
    from services.kit.errors import SwitchboardError

    try:
        out = asyncio.run(_create_key(agency, name))
    except SwitchboardError as exc:
        _fail(exc.detail, 2)
    typer.echo(json.dumps(out) if as_json else f"API key: {out['api_key']}   (shown once)")


async def _create_scim_token(slug: str, name: str) -> dict[str, Any]:
    import tenants  # noqa: F401
    from services.kit import ids
    from services.kit.db import unit_of_work
    from services.scim import service as scim

    async with unit_of_work() as session:
        principal = await _as_agency_owner(session, slug)
        token, raw = await scim.create_token(session, principal, name=name)
    return {
        "scim_token_id": ids.encode("sct", token.id),
        "slug": slug,
        "token": raw,
        "base_url": scim.base_url(slug),
    }


@scim_token_app.command("create")
def scim_token_create(
    agency: Annotated[str, typer.Option(help="the agency's slug")],
    name: Annotated[str, typer.Option(help="a label for the token")] = "SCIM token",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create a SCIM token for the agency's directory (Okta, Entra ID...)."""
    from services.kit.errors import SwitchboardError

    try:
        out = asyncio.run(_create_scim_token(agency, name))
    except SwitchboardError as exc:
        _fail(exc.detail, 2)
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"SCIM base URL: {out['base_url']}")
    typer.echo(f"SCIM token:    {out['token']}   (shown once)")


@oauth2_app.command("rotate-key")
def oauth2_rotate_key(
    agency: Annotated[str, typer.Option(help="the agency's slug")],
    alg: Annotated[str, typer.Option(help="RS256 or ES256")] = "RS256",
) -> None:
    """Make a new signing key active; old keys stay published until their tokens expire."""
    from services.kit.errors import SwitchboardError
    from services.oauth2 import service as oauth2

    if alg not in ("RS256", "ES256"):
        _fail("--alg is RS256 or ES256", 2)
    try:
        kid = asyncio.run(oauth2.rotate_signing_key_for(agency, alg))
    except SwitchboardError as exc:
        _fail(exc.detail, 2)
    typer.echo(f"new signing key {kid} ({alg}) is active for {agency}")


async def _outbox(slug: str, limit: int) -> list[dict[str, Any]]:
    import tenants  # noqa: F401
    from services.kit import ids, mail
    from services.kit.db import unit_of_work

    async with unit_of_work() as session:
        await _as_agency_owner(session, slug)
        rows = await mail.recent(session, limit)
    return [
        {
            "id": ids.encode("msg", m.id),
            "created_at": m.created_at.isoformat(),
            "to": m.to_address,
            "subject": m.subject,
            "status": m.status,
            "body": m.body_text,
        }
        for m in rows
    ]


@outbox_app.command("list")
def outbox_list(
    agency: Annotated[str, typer.Option(help="the agency's slug")],
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    full: Annotated[bool, typer.Option("--full", help="print each message's text")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Messages sent for an agency, newest first (full text: the operator's view)."""
    from services.kit.errors import SwitchboardError

    try:
        messages = asyncio.run(_outbox(agency, limit))
    except SwitchboardError as exc:
        _fail(exc.detail, 2)
    if as_json:
        typer.echo(json.dumps(messages, indent=2))
        return
    if not messages:
        typer.echo("no messages")
    for m in messages:
        typer.echo(f"{m['created_at'][:19]}  {m['status']:<7} {m['to']:<32} {m['subject']}")
        if full:
            typer.echo("    " + m["body"].replace("\n", "\n    ").rstrip() + "\n")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="processes")] = 1,
) -> None:
    """Serve the web app and API."""
    import uvicorn

    uvicorn.run(
        "services.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        # X-Forwarded-* only from the proxies SWITCHBOARD_FORWARDED_ALLOW_IPS names.
        **get_settings().uvicorn_proxy_options,  # type: ignore[arg-type]
        log_level=get_settings().log_level.lower(),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 2,
    queues: str = "default",
) -> None:
    """Run a Celery worker (needs SWITCHBOARD_BROKER_URL)."""
    if get_settings().tasks_in_process:
        _fail("SWITCHBOARD_BROKER_URL is not set: tasks run in-process; no worker is needed")
    from services.tasks import celery_app

    celery_app.worker_main(
        [
            "worker",
            "--loglevel",
            get_settings().log_level,
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def beat() -> None:
    """Run the periodic scheduler (Celery beat)."""
    if get_settings().tasks_in_process:
        _fail("SWITCHBOARD_BROKER_URL is not set: nothing to schedule onto")
    from services.tasks import celery_app

    get_settings().var_dir.mkdir(parents=True, exist_ok=True)
    schedule = str(get_settings().var_dir / "celerybeat-schedule")
    celery_app.start(["beat", "--loglevel", get_settings().log_level, "--schedule", schedule])


@app.command()
def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    sample_port: Annotated[
        int, typer.Option(help="port of the sample solution app (0: do not run it)")
    ] = 8001,
    seed_only: Annotated[bool, typer.Option(help="seed and exit")] = False,
) -> None:
    """Migrate, seed a demo agency and serve it (embedded default: SQLite, in-process tasks),
    with the sample solution app next to it."""
    from infra.migrate import upgrade
    from services.demo import seed
    from services.settings import reset_settings_cache

    # Links (sign-in, invitations) point where the demo actually listens.
    os.environ.setdefault("SWITCHBOARD_BASE_URL", f"http://{host}:{port}")
    reset_settings_cache()
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    sample_url = f"http://{host}:{sample_port}" if sample_port else None
    info = asyncio.run(seed(sample_url))
    base = settings.base_url.rstrip("/")
    lines = [
        "",
        "  Switchboard demo is ready",
        "  ─────────────────────────",
        f"  Portal:        {base}/a/{info['slug']}/login",
        f"  Agency owner:  {info['owner_email']}  /  {info['password']}",
        f"  Agency staff:  {info['staff_email']}  /  {info['password']}",
        f"  Client owner:  {info['client_email']}  /  {info['password']}  ({info['client_name']})",
        f"  API key:       {info['api_key']}",
        f"  API docs:      {base}/docs",
        f"  Try:           curl -H 'Authorization: Bearer {info['api_key']}' {base}/api/v1/clients",
        f"  Database:      {settings.url.render_as_string(hide_password=True)}",
    ]
    solution = info.get("solution")
    if solution:
        lines += [
            f"  Solution:      {solution['name']} at {solution['url']}/  (the sample app)",
            f"                 sign in to the portal as {info['client_email']}, then click",
            f"                 Open on {solution['name']}: you land in it signed in.",
        ]
    lines.append("")
    print("\n".join(lines), flush=True)
    if seed_only:
        return
    # A person is watching: readable console logs unless they asked for JSON.
    os.environ.setdefault("SWITCHBOARD_LOG_JSON", "false")
    reset_settings_cache()
    sys.stdout.flush()
    sample = _start_sample_app(solution, host, sample_port) if solution else None
    try:
        serve(host=host, port=port, workers=1)
    finally:
        if sample is not None:
            sample.terminate()
            sample.wait(timeout=10)


def _start_sample_app(solution: dict[str, Any], host: str, port: int) -> subprocess.Popen[bytes]:
    """The sample solution in its own process (as a real app would be); its secret goes in
    the environment, never on a command line."""
    env = {
        **os.environ,
        "SWITCHBOARD_SAMPLE_APP_CLIENT_SECRET": solution["client_secret"],
    }
    return subprocess.Popen(  # noqa: S603  (our own CLI, fixed arguments)
        [
            sys.executable,
            "-m",
            "services.cli",
            "sample-app",
            "--issuer",
            solution["issuer"],
            "--client-id",
            solution["client_id"],
            "--host",
            host,
            "--port",
            str(port),
            "--name",
            solution["name"],
        ],
        env=env,
    )


@sandbox_app.command("woocommerce")
def sandbox_woocommerce(
    host: str = "127.0.0.1",
    port: int = 8090,
    orders: Annotated[int, typer.Option(min=0, help="seeded orders")] = 200,
    customers: Annotated[int, typer.Option(min=0, help="seeded customers")] = 50,
    products: Annotated[int, typer.Option(min=0, help="seeded products")] = 12,
    seed: Annotated[int, typer.Option(help="the same seed gives the same store")] = 1,
    https: Annotated[
        bool,
        typer.Option(
            help="the store believes it is reached over HTTPS (Basic auth) rather than plain "
            "HTTP (OAuth 1.0a only), as WordPress's is_ssl() decides"
        ),
    ] = False,
    consumer_key: Annotated[str, typer.Option(envvar="SWITCHBOARD_SANDBOX_WC_KEY")] = "",
    consumer_secret: Annotated[str, typer.Option(envvar="SWITCHBOARD_SANDBOX_WC_SECRET")] = "",
) -> None:
    """Serve a WooCommerce store (REST API v3) with seeded orders, customers and products."""
    import secrets

    import uvicorn

    from integrations.woocommerce.sandbox.app import ApiKey, Sandbox
    from integrations.woocommerce.sandbox.data import seeded

    key = consumer_key or "ck_" + secrets.token_hex(20)
    secret = consumer_secret or "cs_" + secrets.token_hex(20)
    store = Sandbox(
        seeded(seed=seed, orders=orders, customers=customers, products=products),
        [ApiKey(key, secret, permissions="read_write")],
        https=https,
    )
    typer.echo(f"WooCommerce sandbox store on http://{host}:{port}/")
    typer.echo(f"  REST API:        http://{host}:{port}/wp-json/wc/v3/orders")
    typer.echo(f"  consumer key:    {key}")
    typer.echo(f"  consumer secret: {secret}")
    typer.echo(
        f"  seeded:          {orders} orders, {customers} customers, {products} products "
        f"(seed {seed}); auth: {'Basic (the store sees HTTPS)' if https else 'OAuth 1.0a'}"
    )
    uvicorn.run(store.app(), host=host, port=port, access_log=False, log_level="warning")


@app.command("sample-app")
def sample_app(
    issuer: Annotated[
        str,
        typer.Option(
            envvar="SWITCHBOARD_SAMPLE_APP_ISSUER",
            help="the agency's issuer, {BASE_URL}/a/<slug>",
        ),
    ],
    client_id: Annotated[
        str,
        typer.Option(
            envvar="SWITCHBOARD_SAMPLE_APP_CLIENT_ID",
            help="the app's client id (POST /api/v1/oauth-clients)",
        ),
    ],
    client_secret: Annotated[
        str | None,
        typer.Option(
            envvar="SWITCHBOARD_SAMPLE_APP_CLIENT_SECRET",
            help="the client secret (confidential clients; prefer the environment variable)",
        ),
    ] = None,
    host: str = "127.0.0.1",
    port: int = 8001,
    name: Annotated[str, typer.Option(help="the app's display name")] = "Sample solution",
    base_url: Annotated[
        str | None,
        typer.Option(
            envvar="SWITCHBOARD_SAMPLE_APP_BASE_URL",
            help="where browsers reach the app (default http://HOST:PORT)",
        ),
    ] = None,
) -> None:
    """Serve the sample solution: an app that signs people in with their agency (OIDC)."""
    import uvicorn

    from services.sampleapp import create_sample_app

    if base_url is None:
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{port}"
    base_url = base_url.rstrip("/")
    try:
        web = create_sample_app(
            issuer,
            client_id,
            client_secret,
            base_url,
            name=name,
            secret_key=os.environ.get("SWITCHBOARD_SAMPLE_APP_SECRET_KEY") or None,
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    kind = "confidential" if client_secret else "public (PKCE only)"
    typer.echo(f"{name} on {base_url}/  ({kind} client {client_id} of {issuer})")
    typer.echo(f"  redirect URI:              {base_url}/callback")
    typer.echo(f"  post-logout redirect URI:  {base_url}/")
    typer.echo(f"  initiate login URI:        {base_url}/login")
    uvicorn.run(
        web,
        host=host,
        port=port,
        access_log=False,
        log_level=get_settings().log_level.lower(),
    )


if __name__ == "__main__":
    app()
