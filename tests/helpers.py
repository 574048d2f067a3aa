"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import time

import anyio

from tests.conftest import BROKER_URL


async def wait_for_jobs(predicate=None, timeout: float = 30.0) -> None:
    """Wait for background jobs: in-process pool drained, or (worker mode) a condition met."""
    from services.kit import jobs

    if not BROKER_URL:
        await anyio.to_thread.run_sync(jobs.wait_in_process_idle)
        if predicate is None or predicate():
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate is not None and predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("background job did not complete in time")


async def grant_as_owner(agency, user_id: str, role: str, client_id: str | None) -> str:
    """Give someone a role as the agency's owner would (the operator acting in the agency)."""
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.principal import Principal
    from tenants.roles import Role
    from tenants.scoping import scope_to

    owner = Principal.acting_in(agency.id, agency.slug, "test: acting as the owner")
    async with unit_of_work() as session:
        await scope_to(session, owner)
        m = await identity.add_membership(
            session,
            owner,
            user_id=ids.decode("usr", user_id),
            role=Role(role),
            client_id=ids.decode("cli", client_id) if client_id else None,
        )
        return ids.encode("mem", m.id)
