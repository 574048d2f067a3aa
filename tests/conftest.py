"""Test harness: a real database (SQLite by default, PostgreSQL with SWITCHBOARD_TEST_PG_URL),
migrated once with the real Alembic chain; a real Celery worker on a real broker with
SWITCHBOARD_TEST_BROKER_URL; a real SMTP server (aiosmtpd) catching outgoing mail.

Tests isolate themselves by creating their own agencies (tenants), so no data is shared.

SWITCHBOARD_TEST_REQUIRE=postgres,worker,browser turns a skip of a test with that marker
into a failure (CI uses it so that a missing service cannot pass silently).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# ---- environment, before any application module reads its settings ----------------------
ROOT = Path(__file__).resolve().parent.parent
_TMP = Path(tempfile.mkdtemp(prefix="switchboard-test-"))
os.environ["SWITCHBOARD_ENV"] = "test"
os.environ["SWITCHBOARD_VAR_DIR"] = str(_TMP)
os.environ["SWITCHBOARD_OPERATOR_API_KEY"] = "op_" + secrets.token_urlsafe(24)
os.environ.setdefault("SWITCHBOARD_LOG_LEVEL", "INFO")
os.environ["SWITCHBOARD_BASE_URL"] = "http://testserver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SMTP_PORT = _free_port()
os.environ["SWITCHBOARD_SMTP_HOST"] = "127.0.0.1"
os.environ["SWITCHBOARD_SMTP_PORT"] = str(SMTP_PORT)

PG_ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_PG_URL", "")
PG_DB_NAME = f"switchboard_test_{os.getpid()}_{secrets.token_hex(3)}"
# PostgreSQL mode connects as production does: the schema owner (the admin URL, on this
# run's database) migrates; the application logs in as its own NOINHERIT login that owns
# nothing (PostgREST's authenticator); operator work has its own login. The logins are this
# run's own (roles are cluster-wide; concurrent runs must not share or rotate them).
PG_APP_LOGIN = f"sb_app_{os.getpid()}_{secrets.token_hex(3)}"
PG_OPERATOR_LOGIN = f"sb_op_{os.getpid()}_{secrets.token_hex(3)}"
if PG_ADMIN_URL:
    from sqlalchemy.engine import make_url

    _owner = make_url(PG_ADMIN_URL).set(database=PG_DB_NAME)
    os.environ["SWITCHBOARD_OWNER_DATABASE_URL"] = _owner.render_as_string(hide_password=False)
    os.environ["SWITCHBOARD_DATABASE_URL"] = _owner.set(
        username=PG_APP_LOGIN, password=secrets.token_urlsafe(18)
    ).render_as_string(hide_password=False)
    os.environ["SWITCHBOARD_OPERATOR_DATABASE_URL"] = _owner.set(
        username=PG_OPERATOR_LOGIN, password=secrets.token_urlsafe(18)
    ).render_as_string(hide_password=False)
BROKER_URL = os.environ.get("SWITCHBOARD_TEST_BROKER_URL", "")
if BROKER_URL:
    os.environ["SWITCHBOARD_BROKER_URL"] = BROKER_URL
else:
    os.environ.pop("SWITCHBOARD_BROKER_URL", None)
REQUIRED = {m.strip() for m in os.environ.get("SWITCHBOARD_TEST_REQUIRE", "").split(",") if m}

# ---- application imports -----------------------------------------------------------------
import httpx  # noqa: E402
import pytest  # noqa: E402

from services.settings import get_settings, reset_settings_cache  # noqa: E402

reset_settings_cache()


def _pg_admin(sql: str) -> None:
    import psycopg

    url = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    if PG_ADMIN_URL:
        _pg_admin(f'CREATE DATABASE "{PG_DB_NAME}"')
    from infra.migrate import upgrade

    upgrade()


def pytest_unconfigure(config: pytest.Config) -> None:
    if PG_ADMIN_URL:
        try:
            _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB_NAME}" WITH (FORCE)')
            for login in (PG_APP_LOGIN, PG_OPERATOR_LOGIN):
                _pg_admin(f'DROP ROLE IF EXISTS "{login}"')
        except Exception as exc:  # never hide the test result behind cleanup
            print(f"could not drop {PG_DB_NAME}: {exc}", file=sys.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and REQUIRED:
        hit = REQUIRED & {m.name for m in item.iter_markers()}
        if hit:
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid}: skipped, but SWITCHBOARD_TEST_REQUIRE demands {sorted(hit)}: "
                f"{report.longrepr}"
            )


# ---- services: SMTP, Celery worker ------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        # called with each message as it arrives, before the sender hears "250 OK"
        self.on_receive: list[Callable[[dict[str, str]], None]] = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes
        from email.policy import default

        msg = message_from_bytes(envelope.content, policy=default)
        body = msg.get_body(preferencelist=("plain",))
        received = {
            "to": ",".join(envelope.rcpt_tos),
            "from": str(msg["From"]),
            "subject": str(msg["Subject"]),
            "body": body.get_content() if body else "",
        }
        for hook in list(self.on_receive):
            hook(received)
        self.messages.append(received)
        return "250 OK"

    def to(self, address: str) -> list[dict[str, str]]:
        return [m for m in self.messages if address.lower() in m["to"].lower()]


@pytest.fixture(scope="session")
def mailbox():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="session")
def celery_worker_process(mailbox):
    """A real `celery worker` subprocess on the configured broker (worker mode only)."""
    if not BROKER_URL:
        yield None
        return
    from services.tasks import celery_app

    celery_app.control.purge()
    log = open(_TMP / "worker.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "services.tasks:celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited: {(_TMP / 'worker.log').read_text()}")
        if " ready." in (_TMP / "worker.log").read_text():
            break
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("celery worker did not become ready in 60 s")
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# ---- the application ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app(mailbox, celery_worker_process):
    from services.app import create_app

    return create_app()


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {get_settings().operator_api_key}"}


class AgencyHandle:
    def __init__(self, data: dict, password: str) -> None:
        self.public_id: str = data["agency"]["id"]
        self.slug: str = data["agency"]["slug"]
        self.api_key: str = data["api_key"]
        self.owner_user_id: str = data["owner_user_id"]
        self.owner_email: str = f"owner@{self.slug}.example"
        self.owner_password = password
        self.headers = {"Authorization": f"Bearer {self.api_key}"}

    @property
    def id(self) -> uuid.UUID:
        from services.kit import ids

        value = ids.decode("agy", self.public_id)
        assert value is not None
        return value


@pytest.fixture
def make_agency(client, operator_headers):
    """Create a fresh agency through the operator API: `agency = await make_agency()`."""

    async def create(slug: str | None = None, name: str = "Test Agency") -> AgencyHandle:
        slug = slug or f"ag-{secrets.token_hex(5)}"
        password = "correct-horse-" + secrets.token_hex(4)
        resp = await client.post(
            "/api/v1/agencies",
            headers=operator_headers,
            json={
                "slug": slug,
                "name": name,
                "admin_email": f"owner@{slug}.example",
                "admin_name": "Owner",
                "admin_password": password,
            },
        )
        assert resp.status_code == 201, resp.text
        return AgencyHandle(resp.json(), password)

    return create


@pytest.fixture
def make_client(client):
    async def create(agency: AgencyHandle, **fields) -> dict:
        body = {"legal_name": f"Client {secrets.token_hex(3)}", **fields}
        resp = await client.post("/api/v1/clients", headers=agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    return create


def is_postgres() -> bool:
    return get_settings().is_postgres


requires_postgres = pytest.mark.skipif(not PG_ADMIN_URL, reason="needs SWITCHBOARD_TEST_PG_URL")
requires_worker = pytest.mark.skipif(not BROKER_URL, reason="needs SWITCHBOARD_TEST_BROKER_URL")
