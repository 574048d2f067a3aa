"""The daily purge of expired credentials, for every domain that keeps some: beat runs it on
a worker; on the embedded default the web process runs it itself (services/app.py)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from services.worker import celery_app, run_async

log = structlog.get_logger("switchboard.retention")

INTERVAL = timedelta(hours=6)


async def purge_all() -> dict[str, int]:
    from services.identity import retention as identity
    from services.oauth2 import retention as oauth2

    counts = {**await identity.purge_expired(), **await oauth2.purge_expired()}
    log.info("retention.purged", **counts)
    return counts


@celery_app.task(name="maintenance.purge_expired", acks_late=True)
def purge_expired_task() -> dict[str, int]:
    return run_async(purge_all())


class InProcessRetention:
    """The embedded default has no beat: the web process purges every INTERVAL itself."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await purge_all()
            except Exception as exc:  # retried at the next interval
                log.warning("retention.failed", error=type(exc).__name__)
            await asyncio.sleep(INTERVAL.total_seconds())
