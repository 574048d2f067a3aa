"""Background jobs: after-commit publishing, a real Celery worker, the outbox sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import BROKER_URL, PG_ADMIN_URL
from tests.helpers import wait_for_jobs


async def _outbox(agency_id):
    from services.kit.db import unit_of_work
    from services.kit.jobs import JobOutbox
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency_id))
        return (await session.execute(select(JobOutbox))).scalars().all()


async def test_rolled_back_request_queues_nothing(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    # invalid role/client combination: the request fails after validation, inside the service
    resp = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={"email": "a@example.com", "role": "agency_owner", "client_id": shop["id"]},
    )
    assert resp.status_code == 422
    assert await _outbox(agency.id) == []


@pytest.mark.worker
@pytest.mark.skipif(not BROKER_URL, reason="needs SWITCHBOARD_TEST_BROKER_URL (real broker)")
async def test_real_worker_delivers_invitation(client, make_agency, mailbox):
    agency = await make_agency(name="Worker Co")
    email = f"w+{agency.slug}@example.com"
    resp = await client.post(
        "/api/v1/invitations", headers=agency.headers, json={"email": email, "role": "agency_staff"}
    )
    assert resp.status_code == 201
    await wait_for_jobs(lambda: bool(mailbox.to(email)), timeout=60)
    # the delivery, and the message it queued (sent once the delivery had committed)
    done = await _outbox(agency.id)
    assert sorted(j.task for j in done) == ["identity.invitation.deliver", "mail.deliver"]
    await wait_for_jobs(lambda: True)
    for _ in range(50):
        done = await _outbox(agency.id)
        if all(j.completed_at for j in done):
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert all(j.completed_at is not None and j.attempts == 1 for j in done), done


async def test_sweeper_republishes_uncompleted_jobs(client, make_agency, mailbox):
    from services.kit import jobs
    from services.kit.db import unit_of_work
    from services.kit.types import utcnow
    from services.worker import sweep_outbox
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency(name="Sweep Co")
    email = f"s+{agency.slug}@example.com"
    resp = await client.post(
        "/api/v1/invitations", headers=agency.headers, json={"email": email, "role": "agency_staff"}
    )
    await wait_for_jobs(lambda: bool(mailbox.to(email)), timeout=60)
    inv_id = resp.json()["id"]
    # A job committed while the broker was down: a row, no message, old enough to sweep.
    from services.identity.service import invitation_url
    from services.kit import ids

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        job = jobs.enqueue(
            session,
            "identity.invitation.deliver",
            agency.id,
            secrets={"url": invitation_url(agency.slug, "swept-token")},
            invitation_id=str(ids.decode("inv", inv_id)),
        )
        job.created_at = utcnow() - timedelta(minutes=10)
        jobs.discard_pending(session)  # committed, never published
    published = await sweep_outbox()
    assert published >= 1
    await wait_for_jobs(lambda: len(mailbox.to(email)) == 2, timeout=60)
    assert "/invite/swept-token" in mailbox.to(email)[-1]["body"]  # the sealed link, opened
    for _ in range(100):
        swept = [j for j in await _outbox(agency.id) if j.id == job.id]
        if swept[0].completed_at:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert swept[0].completed_at is not None and swept[0].published_count == 1


@pytest.mark.postgres
@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (SWITCHBOARD_TEST_PG_URL)")
async def test_a_copy_of_a_running_job_does_not_run(client, make_agency):
    """The sweeper may re-publish a job that is still running; the copy must not run it."""
    from services.kit import jobs
    from services.kit.db import unit_of_work
    from services.worker import _run_job
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        job = jobs.JobOutbox(agency_id=agency.id, task="test.noop", kwargs={})
        session.add(job)
    calls: list[str] = []

    async def fn(session, **kwargs):
        calls.append("ran")

    async with unit_of_work() as running:  # the first delivery, mid-task: row locked
        await set_tenant(running, TenantContext.for_agency(agency.id))
        await running.execute(
            select(jobs.JobOutbox).where(jobs.JobOutbox.id == job.id).with_for_update()
        )
        await _run_job("test.noop", fn, str(job.id), str(agency.id), {})
        assert calls == []  # the copy saw the lock and left
    await _run_job("test.noop", fn, str(job.id), str(agency.id), {})
    assert calls == ["ran"]  # once the lock is gone, the job runs, once
    await _run_job("test.noop", fn, str(job.id), str(agency.id), {})
    assert calls == ["ran"]  # and a completed job never runs again


# ---- wiring: one list of task modules, one publisher registration point ---------------------


def _task_modules_in_source() -> set[str]:
    """Every module under services/ that declares a task, found by reading the source."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = set()
    for path in (root / "services").rglob("*.py"):
        text = path.read_text()
        if "@tenant_task(" in text or "@celery_app.task(" in text:
            found.add(".".join(path.relative_to(root).with_suffix("").parts))
    return found


def test_every_module_declaring_tasks_is_listed_once():
    from services.tasks import TASK_MODULES

    assert len(set(TASK_MODULES)) == len(TASK_MODULES)
    assert _task_modules_in_source() <= set(TASK_MODULES)


@pytest.mark.parametrize("broker", ["", "redis://127.0.0.1:6399/0"], ids=["in-process", "celery"])
def test_a_fresh_process_registers_every_task_in_both_modes(broker):
    """Importing only services.tasks (what `celery -A services.tasks:celery_app` and the web
    app do) registers every listed module's tasks and installs the mode's publisher."""
    import json
    import os
    import subprocess
    import sys

    probe = """
import json, sys
import services.tasks as t
from services.kit import jobs
from services.worker import registered_tasks
print(json.dumps({
    "modules": [m for m in t.TASK_MODULES if m in sys.modules],
    "include": list(t.celery_app.conf.include),
    "celery": sorted(n for n in t.celery_app.tasks if not n.startswith("celery.")),
    "tenant": sorted(registered_tasks()),
    "publisher": type(jobs.get_publisher()).__name__,
}))
"""
    env = {**os.environ, "SWITCHBOARD_BROKER_URL": broker}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    from services.tasks import TASK_MODULES

    assert got["modules"] == list(TASK_MODULES)
    assert got["include"] == list(TASK_MODULES)
    tenant = {"identity.invitation.deliver", "identity.password_reset.deliver"}
    assert tenant <= set(got["tenant"])
    assert tenant | {"kit.outbox.sweep", "maintenance.purge_expired"} <= set(got["celery"])
    assert got["publisher"] == ("CeleryPublisher" if broker else "InProcessPublisher")


def test_the_kit_imports_no_worker_and_no_domain():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "services" / "kit"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("services.") and not name.startswith(
                    ("services.kit", "services.settings")
                ):
                    raise AssertionError(f"{path.name} imports {name}")


@pytest.mark.skipif(bool(BROKER_URL), reason="the in-process runner (no broker)")
async def test_in_process_failures_are_logged_without_secrets(client, make_agency, capsys):
    from services.kit import jobs
    from services.kit.db import unit_of_work
    from services.worker import tenant_task
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    @tenant_task("test.jobs.explode")
    async def explode(session, url: str) -> None:
        raise RuntimeError("the task broke")

    agency = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        failing = jobs.enqueue(
            session, "test.jobs.explode", agency.id, secrets={"url": "https://x/tok-s3cr3t"}
        )
        unknown = jobs.enqueue(session, "test.jobs.never_registered", agency.id, note="n")
    await wait_for_jobs()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "task.failed" in line]
    assert any("test.jobs.explode" in x and "RuntimeError" in x for x in lines), err
    assert any("test.jobs.never_registered" in x for x in lines), err
    assert "tok-s3cr3t" not in err
    rows = {j.id: j for j in await _outbox(agency.id)}
    assert rows[failing.id].completed_at is None  # left to the sweeper
    assert rows[unknown.id].completed_at is None


@pytest.mark.skipif(bool(BROKER_URL), reason="the in-process runner (no broker)")
async def test_the_embedded_app_runs_the_outbox_sweeper(app, client, make_agency, mailbox):
    """No beat on the embedded default: the app's lifespan runs the schedule, sweeper first."""
    from services.kit import jobs
    from services.kit.db import unit_of_work
    from services.kit.types import utcnow
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency(name="Lifespan Co")
    email = f"l+{agency.slug}@example.com"
    resp = await client.post(
        "/api/v1/invitations", headers=agency.headers, json={"email": email, "role": "agency_staff"}
    )
    await wait_for_jobs(lambda: bool(mailbox.to(email)))
    async with unit_of_work() as session:  # committed while nothing could publish
        await set_tenant(session, TenantContext.for_agency(agency.id))
        from services.kit import ids

        job = jobs.enqueue(
            session,
            "identity.invitation.deliver",
            agency.id,
            secrets={"url": "http://testserver/a/x/invite/lifespan"},
            invitation_id=str(ids.decode("inv", resp.json()["id"])),
        )
        job.created_at = utcnow() - timedelta(minutes=10)
        jobs.discard_pending(session)
    async with app.router.lifespan_context(app):
        await wait_for_jobs(lambda: len(mailbox.to(email)) == 2, timeout=30)
        for _ in range(100):
            [row] = [j for j in await _outbox(agency.id) if j.id == job.id]
            if row.completed_at:
                break
            import asyncio

            await asyncio.sleep(0.1)
    assert row.completed_at is not None and row.published_count == 1


# ---- no secret at rest in the outbox; completed rows purged ---------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    async def publish(self, task, message):
        self.messages.append((task, message))

    def wait_idle(self, timeout):
        return None


async def test_invitation_and_reset_links_never_sit_in_the_outbox(client, make_agency, mailbox):
    import json
    import re

    from services.identity import service as identity
    from services.kit import jobs
    from services.kit.db import unit_of_work
    from services.worker import purge_outbox
    from tenants.context import TenantContext
    from tenants.models import Agency
    from tenants.scoping import set_tenant

    agency = await make_agency(name="Sealed Co")
    invitee = f"i+{agency.slug}@example.com"
    real, recorder = jobs.get_publisher(), _Recorder()
    jobs.set_publisher(recorder)  # hold the messages: inspect the rows before any task runs
    try:
        resp = await client.post(
            "/api/v1/invitations",
            headers=agency.headers,
            json={"email": invitee, "role": "agency_staff"},
        )
        assert resp.status_code == 201, resp.text
        invite_url = resp.json()["url"]
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            row = await session.get(Agency, agency.id)
            # what the forgot-password job does once it found the account (the request job
            # before it carries only the address)
            await identity.issue_password_reset(session, row, agency.owner_email, ip=None)
    finally:
        jobs.set_publisher(real)
    invite_token = invite_url.rsplit("/", 1)[1]
    pending = await _outbox(agency.id)
    assert {j.task for j in pending} == {
        "identity.invitation.deliver",
        "identity.password_reset.deliver",
    }
    at_rest = json.dumps([j.kwargs for j in pending]) + json.dumps(recorder.messages)
    assert invite_token not in at_rest and "/invite/" not in at_rest and "/reset/" not in at_rest

    for task, message in recorder.messages:  # now deliver them, as a broker would
        await real.publish(task, message)
    await wait_for_jobs(
        lambda: bool(mailbox.to(invitee)) and bool(mailbox.to(agency.owner_email)), timeout=60
    )
    assert invite_url in mailbox.to(invitee)[-1]["body"]
    reset = re.search(
        r"http://testserver(/a/[^/]+/reset/([A-Za-z0-9]+))",
        mailbox.to(agency.owner_email)[-1]["body"],
    )
    assert reset, mailbox.to(agency.owner_email)[-1]["body"]
    assert (await client.get(reset.group(1))).status_code == 200  # the link works
    assert (await client.get(invite_url.removeprefix("http://testserver"))).status_code == 200

    for _ in range(100):
        done = await _outbox(agency.id)
        if all(j.completed_at for j in done):
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert all(j.completed_at for j in done)
    after = json.dumps([j.kwargs for j in done])
    for secret in (invite_token, reset.group(2)):
        assert secret not in after
    assert jobs.SEALED_KEY not in after  # opened once, then dropped

    # completed rows go after a short grace, not before
    await purge_outbox()
    # the two deliveries and the two messages they queued (mail.deliver, by row id)
    assert sorted(j.task for j in await _outbox(agency.id)) == [
        "identity.invitation.deliver",
        "identity.password_reset.deliver",
        "mail.deliver",
        "mail.deliver",
    ]
    from services.kit.types import utcnow
    from services.worker import COMPLETED_GRACE

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        from sqlalchemy import update

        await session.execute(
            update(jobs.JobOutbox)
            .where(jobs.JobOutbox.agency_id == agency.id)
            .values(completed_at=utcnow() - COMPLETED_GRACE - timedelta(minutes=1))
        )
    assert (await purge_outbox())["job_outbox"] >= 4
    assert await _outbox(agency.id) == []


async def test_a_reset_link_works_the_moment_its_message_arrives(client, make_agency, mailbox):
    """The link is minted by the delivering task: the message may leave only once the task's
    transaction has committed it (a person who clicks at once, or a mail scanner that follows
    links on arrival, found a 404 before)."""
    import asyncio
    import re

    from services.identity import service as identity
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Agency
    from tenants.scoping import set_tenant

    loop = asyncio.get_running_loop()
    agency = await make_agency(name="Prompt Links")
    opened: list[int] = []

    def follow(message: dict[str, str]) -> None:
        found = re.search(r"http://testserver(/a/[^/]+/reset/[A-Za-z0-9]+)", message["body"])
        if found and agency.owner_email in message["to"]:
            pending = asyncio.run_coroutine_threadsafe(client.get(found.group(1)), loop)
            opened.append(pending.result(timeout=30).status_code)

    mailbox.on_receive.append(follow)
    try:
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            row = await session.get(Agency, agency.id)
            await identity.issue_password_reset(session, row, agency.owner_email, ip=None)
        await wait_for_jobs(lambda: bool(opened), timeout=60)
    finally:
        mailbox.on_receive.remove(follow)
    assert opened == [200]
