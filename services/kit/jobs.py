"""Background jobs, queued inside the transaction and published only after it commits.

`enqueue()` writes a row to the `job_outbox` table in the caller's transaction and remembers
it on the session. After the unit of work commits, `dispatch_committed()` hands the
remembered jobs to the publisher that the application's wiring installed (`set_publisher`:
Celery when a broker is configured, an in-process pool otherwise; see services/tasks.py).
The kit knows no task and no domain. A rolled-back transaction leaves neither the row nor the
message. The task wrapper marks the row completed in the same transaction as the task's own
effects, so a job runs to completion at most once; the outbox sweeper re-publishes rows that
were never completed (broker down at publish time, worker lost) and the retention job purges
completed rows.

Secrets a task needs (a link with a token in it) are passed as `secrets=`: they are sealed
with the kit's crypto (AES-GCM, bound to the agency, the job and the task), travel sealed
through the broker, are opened only by the task wrapper, and are dropped from the row when
the job completes. Nothing readable sits in `job_outbox.kwargs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol

import orjson
import structlog
from sqlalchemy import Column, Index
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field

from services.kit.crypto import seal, unseal
from services.kit.models import TenantModel
from services.kit.types import JSONType, UTCDateTime, utcnow

log = structlog.get_logger("switchboard.jobs")
_PENDING_KEY = "pending_jobs"
SEALED_KEY = "_sealed"  # the kwargs entry holding the sealed secrets
_SEAL_PURPOSE = "job-outbox"


# The pydantic mypy plugin's synthesized __init__ takes `**kwargs` and so clashes with the
# field of that name (a plugin limitation; the column is named in migration 0001).
class JobOutbox(TenantModel, table=True):  # type: ignore[no-redef]
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


def enqueue(
    session: AsyncSession,
    task: str,
    agency_id: uuid.UUID,
    *,
    secrets: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> JobOutbox:
    """Queue `task` to run after the current transaction commits. kwargs must be JSON and
    hold no secret; what the task must not store in clear goes in `secrets` (sealed)."""
    job = JobOutbox(agency_id=agency_id, task=task, kwargs=dict(kwargs))
    if secrets:
        if SEALED_KEY in kwargs:
            raise ValueError(f"{SEALED_KEY!r} is reserved")
        blob = seal(
            orjson.dumps(dict(secrets)),
            purpose=_SEAL_PURPOSE,
            context=_context(task, job.id, agency_id),
        )
        job.kwargs = {**kwargs, SEALED_KEY: blob}
    session.add(job)
    session.info.setdefault(_PENDING_KEY, []).append(job)
    return job


def _context(task: str, job_id: uuid.UUID, agency_id: uuid.UUID) -> str:
    return f"{agency_id}|{job_id}|{task}"


def task_kwargs(
    task: str, job_id: uuid.UUID, agency_id: uuid.UUID, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """A job's keyword arguments with its secrets opened (the task wrapper calls it)."""
    out = dict(kwargs)
    blob = out.pop(SEALED_KEY, None)
    if blob is not None:
        context = _context(task, job_id, agency_id)
        out.update(orjson.loads(unseal(blob, purpose=_SEAL_PURPOSE, context=context)))
    return out


def mark_completed(job: JobOutbox) -> None:
    """Completed in the task's transaction; its sealed secrets are of no further use."""
    job.completed_at = utcnow()
    job.attempts += 1
    if SEALED_KEY in job.kwargs:
        job.kwargs = {k: v for k, v in job.kwargs.items() if k != SEALED_KEY}


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


class Publisher(Protocol):
    """Delivers a committed job's message to whatever runs tasks."""

    async def publish(self, task: str, message: dict[str, Any]) -> None: ...

    def wait_idle(self, timeout: float) -> None:
        """Block until jobs published by this process have run (where it can tell)."""
        ...


_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    """The registration point: the application's wiring (services/tasks.py) installs one."""
    global _publisher
    _publisher = publisher


def get_publisher() -> Publisher | None:
    return _publisher


def _message(job_id: uuid.UUID, agency_id: uuid.UUID, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": str(job_id), "agency_id": str(agency_id), **kwargs}


async def publish(
    task: str, job_id: uuid.UUID, agency_id: uuid.UUID, kwargs: dict[str, Any]
) -> None:
    publisher = _publisher
    if publisher is None:  # the row stays; the sweeper publishes it once a publisher is wired
        log.error("jobs.no_publisher", task=task, job_id=str(job_id))
        return
    try:
        await publisher.publish(task, _message(job_id, agency_id, kwargs))
    except Exception as exc:  # the outbox sweeper will publish it again
        # The type only: a broker error can carry its URL, credentials included.
        log.warning("jobs.publish_failed", task=task, job_id=str(job_id), error=type(exc).__name__)


def wait_in_process_idle(timeout: float = 30.0) -> None:
    """Block until in-process jobs have finished (tests and the CLI use it)."""
    if _publisher is not None:
        _publisher.wait_idle(timeout)
