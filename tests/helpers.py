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
