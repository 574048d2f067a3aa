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
    [job] = await _outbox(agency.id)
    assert job.task == "identity.invitation.deliver"
    await wait_for_jobs(lambda: True)
    for _ in range(50):
        [job] = await _outbox(agency.id)
        if job.completed_at:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert job.completed_at is not None and job.attempts == 1


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
    from services.kit import ids

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        job = jobs.JobOutbox(
            agency_id=agency.id,
            task="identity.invitation.deliver",
            kwargs={
                "invitation_id": str(ids.decode("inv", inv_id)),
                "url": "http://testserver/a/x/invite/y",
            },
            created_at=utcnow() - timedelta(minutes=10),
        )
        session.add(job)
    published = await sweep_outbox()
    assert published >= 1
    await wait_for_jobs(lambda: len(mailbox.to(email)) == 2, timeout=60)
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
