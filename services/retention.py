"""The purge of expired credentials, for every domain that keeps some, and of completed
outbox jobs: beat runs it on a worker; on the embedded default the web process runs the same
schedule itself (services/schedule.py InProcessBeat)."""

from __future__ import annotations

import structlog

from services.worker import celery_app, purge_outbox, run_async

log = structlog.get_logger("switchboard.retention")


async def purge_all() -> dict[str, int]:
    from services.identity import retention as identity
    from services.oauth2 import retention as oauth2

    counts = {
        **await identity.purge_expired(),
        **await oauth2.purge_expired(),
        **await purge_outbox(),
    }
    log.info("retention.purged", **counts)
    return counts


@celery_app.task(name="maintenance.purge_expired", acks_late=True)
def purge_expired_task() -> dict[str, int]:
    return run_async(purge_all())
