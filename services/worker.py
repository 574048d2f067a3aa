"""The Celery application, the async bridge and the tenant-scoped task decorator.

Tasks are named `domain.entity.verb`, take ids (never objects) and run the same async
services as the API through one event loop owned by each worker process, created after fork.
Reliability settings: late acks, reject on worker lost, prefetch 1, JSON only, publisher
confirms on RabbitMQ, a Redis visibility timeout longer than any task.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from celery import Celery, signals
from sqlalchemy import select

from services.kit.db import unit_of_work
from services.kit.jobs import JobOutbox, publish
from services.kit.types import utcnow
from services.settings import get_settings
from tenants.context import TenantContext
from tenants.principal import Principal
from tenants.scoping import set_tenant, unscoped

log = structlog.get_logger("switchboard.worker")
T = TypeVar("T")

TASK_MODULES = ["services.worker", "services.identity.tasks", "services.retention"]


class Queue:
    DEFAULT = "default"


def _make_celery() -> Celery:
    settings = get_settings()
    app = Celery("switchboard", broker=settings.broker_url or "memory://")
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=Queue.DEFAULT,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600, "confirm_publish": True},
        worker_hijack_root_logger=False,
        timezone="UTC",
        include=TASK_MODULES,
    )
    from services.schedule import BEAT_SCHEDULE

    app.conf.beat_schedule = BEAT_SCHEDULE
    return app


celery_app = _make_celery()

# ---- the async bridge ------------------------------------------------------------------

_loop_local = threading.local()


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine on this thread's (this process's) long-lived event loop."""
    loop: asyncio.AbstractEventLoop | None = getattr(_loop_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loop_local.loop = loop
    return loop.run_until_complete(coro)  # type: ignore[arg-type]


@signals.worker_init.connect
def _check_login(**_: Any) -> None:
    """The worker runs tenant work too: the same refusal of a privileged login as the API."""
    from tenants.rls import refuse_privileged_login

    refuse_privileged_login(get_settings())


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A forked child must not reuse the parent's loop or pooled connections. Engines are keyed
    # by pid, so new ones are created lazily; the loop is per thread-local.
    _loop_local.loop = None


# ---- tenant-scoped tasks ----------------------------------------------------------------

TaskFn = Callable[..., Awaitable[None]]
_REGISTRY: dict[str, TaskFn] = {}


async def _run_job(
    name: str, fn: TaskFn, job_id: str, agency_id: str, kwargs: dict[str, Any]
) -> None:
    aid = uuid.UUID(agency_id)
    async with unit_of_work() as session:
        await set_tenant(
            session, TenantContext.for_agency(aid), Principal.system(aid, label=f"task {name}")
        )
        # Lock the row for the task's transaction: a copy re-published by the sweeper while
        # this one still runs finds it locked and leaves (PostgreSQL; SQLite serializes writes).
        stmt = (
            select(JobOutbox)
            .where(JobOutbox.id == uuid.UUID(job_id))
            .with_for_update(skip_locked=True)
        )
        job = (await session.execute(stmt)).scalar_one_or_none()
        if job is None or job.completed_at is not None:
            log.info("task.skip", task=name, job_id=job_id, reason="done, running or unknown")
            return
        await fn(session, **kwargs)
        job.completed_at = utcnow()
        job.attempts += 1


def tenant_task(name: str, *, max_retries: int = 5) -> Callable[[TaskFn], TaskFn]:
    """Declare `async def fn(session, **kwargs)` as a task that runs inside its tenant.

    The wrapper opens a unit of work scoped to the job's agency, skips jobs already completed,
    and marks the outbox row completed in the same transaction as the task's effects.
    """

    def decorate(fn: TaskFn) -> TaskFn:
        @celery_app.task(
            name=name,
            bind=True,
            acks_late=True,
            max_retries=max_retries,
            autoretry_for=(ConnectionError, TimeoutError, OSError),
            retry_backoff=True,
            retry_backoff_max=300,
            retry_jitter=True,
        )
        def celery_entry(self: Any, job_id: str, agency_id: str, **kwargs: Any) -> None:
            run_async(_run_job(name, fn, job_id, agency_id, kwargs))

        _REGISTRY[name] = fn
        return fn

    return decorate


def run_in_process(name: str, message: dict[str, Any]) -> None:
    """Embedded default: run a queued job on a local thread (no broker)."""
    import services.identity.tasks  # noqa: F401  (registers the tasks)

    fn = _REGISTRY[name]
    kwargs = dict(message)
    job_id, agency_id = kwargs.pop("job_id"), kwargs.pop("agency_id")
    try:
        run_async(_run_job(name, fn, job_id, agency_id, kwargs))
    except Exception:
        log.exception("task.failed", task=name, job_id=job_id)


# ---- the outbox sweeper ----------------------------------------------------------------

SWEEP_AFTER = timedelta(minutes=2)
MAX_PUBLISHES = 10


async def sweep_outbox() -> int:
    """Re-publish jobs that were committed but never completed. Returns how many."""
    cutoff = utcnow() - SWEEP_AFTER
    async with unit_of_work() as session:
        async with unscoped(session, "outbox sweeper: re-publish uncompleted jobs of all agencies"):
            rows = (
                (
                    await session.execute(
                        select(JobOutbox)
                        .where(
                            JobOutbox.completed_at.is_(None),
                            JobOutbox.created_at < cutoff,
                            JobOutbox.published_count < MAX_PUBLISHES,
                        )
                        .order_by(JobOutbox.created_at)
                        .limit(500)
                    )
                )
                .scalars()
                .all()
            )
            pending = []
            for job in rows:
                if job.last_published_at and job.last_published_at > cutoff:
                    continue
                job.published_count += 1
                job.last_published_at = utcnow()
                pending.append((job.task, job.id, job.agency_id, dict(job.kwargs)))
    for task, job_id, agency_id, kwargs in pending:
        await publish(task, job_id, agency_id, kwargs)
    return len(pending)


@celery_app.task(name="kit.outbox.sweep", acks_late=True)
def sweep_outbox_task() -> int:
    return run_async(sweep_outbox())
