"""Background jobs, queued inside the transaction and published only after it commits.

`enqueue()` writes a row to the `job_outbox` table in the caller's transaction and remembers
it on the session. After the unit of work commits, `dispatch_committed()` publishes the
remembered jobs: to Celery when a broker is configured, otherwise to an in-process thread
pool. A rolled-back transaction leaves neither the row nor the message. The task wrapper
marks the row completed in the same transaction as the task's own effects, so a job runs to
completion at most once; the outbox sweeper re-publishes rows that were never completed
(broker down at publish time, worker lost).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, ClassVar

import anyio
import structlog
from sqlalchemy import Column, Index
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field

from services.kit.models import TenantModel
from services.kit.types import JSONType, UTCDateTime, utcnow
from services.settings import get_settings

log = structlog.get_logger("switchboard.jobs")
_PENDING_KEY = "pending_jobs"


class JobOutbox(TenantModel, table=True):
    __tablename__ = "job_outbox"
    __audited__: ClassVar[bool] = False
    __table_args__ = (Index("ix_job_outbox_pending", "completed_at", "created_at"),)

    task: str = Field(max_length=120)
    kwargs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_count: int = 0
    last_published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=2000)


def enqueue(session: AsyncSession, task: str, agency_id: uuid.UUID, **kwargs: Any) -> JobOutbox:
    """Queue `task` to run after the current transaction commits. kwargs must be JSON."""
    job = JobOutbox(agency_id=agency_id, task=task, kwargs=kwargs)
    session.add(job)
    session.info.setdefault(_PENDING_KEY, []).append(job)
    return job


def _forget(session: Any) -> None:
    session.info.pop(_PENDING_KEY, None)


async def dispatch_committed(session: AsyncSession) -> None:
    """Publish the jobs of a committed session. Called by the unit of work after commit."""
    jobs: list[JobOutbox] = session.info.pop(_PENDING_KEY, [])
    for job in jobs:
        await publish(job.task, job.id, job.agency_id, job.kwargs)


def discard_pending(session: AsyncSession) -> None:
    """Drop queued jobs of a session that rolled back."""
    _forget(session)


# ---- publishing ------------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_inflight: set[Future[Any]] = set()


def _in_process_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="switchboard-task")
    return _executor


def _message(job_id: uuid.UUID, agency_id: uuid.UUID, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": str(job_id), "agency_id": str(agency_id), **kwargs}


async def publish(
    task: str, job_id: uuid.UUID, agency_id: uuid.UUID, kwargs: dict[str, Any]
) -> None:
    message = _message(job_id, agency_id, kwargs)
    if get_settings().tasks_in_process:
        from services.worker import run_in_process

        future = _in_process_executor().submit(run_in_process, task, message)
        _inflight.add(future)
        future.add_done_callback(_inflight.discard)
        return
    from services.worker import celery_app

    try:
        await anyio.to_thread.run_sync(lambda: celery_app.send_task(task, kwargs=message))
    except Exception as exc:  # the outbox sweeper will publish it again
        log.warning("jobs.publish_failed", task=task, job_id=str(job_id), error=str(exc))


def wait_in_process_idle(timeout: float = 30.0) -> None:
    """Block until in-process jobs have finished (tests and the CLI use it)."""
    from concurrent.futures import wait

    wait(list(_inflight), timeout=timeout)
