"""The Celery application, the async bridge, the tenant-scoped task decorator, the two job
publishers (Celery, in-process) and the outbox sweeper. It imports no domain: which task
modules exist is listed once in services/tasks.py, which also installs the publisher.

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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any, TypeVar, cast

import anyio
import structlog
from celery import Celery, signals
from sqlalchemy import CursorResult, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.kit import jobs, mail
from services.kit.db import unit_of_work
from services.kit.jobs import JobOutbox, publish
from services.kit.types import utcnow
from services.settings import get_settings
from tenants.context import TenantContext
from tenants.principal import Principal
from tenants.scoping import set_tenant, unscoped

log = structlog.get_logger("switchboard.worker")
T = TypeVar("T")


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
    )
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
    return loop.run_until_complete(coro)


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
            .where(col(JobOutbox.id) == uuid.UUID(job_id))
            .with_for_update(skip_locked=True)
        )
        job = (await session.execute(stmt)).scalar_one_or_none()
        if job is None or job.completed_at is not None:
            log.info("task.skip", task=name, job_id=job_id, reason="done, running or unknown")
            return
        await fn(session, **jobs.task_kwargs(name, job.id, aid, kwargs))
        jobs.mark_completed(job)


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


@tenant_task(mail.DELIVER_TASK)
async def deliver_mail(session: AsyncSession, email_id: str, sender: str) -> None:
    """One recorded message over SMTP, after the transaction that wrote it committed."""
    await mail.deliver(session, uuid.UUID(email_id), sender)


def registered_tasks() -> frozenset[str]:
    """Names of the tenant tasks whose modules were imported (services/tasks.py imports all)."""
    return frozenset(_REGISTRY)


def run_in_process(name: str, message: dict[str, Any]) -> None:
    """Embedded default: run a queued job on a local thread (no broker). A failure is logged
    with the task's name and the exception, never the job's arguments (they may be secrets);
    the row stays uncompleted and the sweeper publishes it again."""
    kwargs = dict(message)
    job_id, agency_id = kwargs.pop("job_id"), kwargs.pop("agency_id")
    fn = _REGISTRY.get(name)
    if fn is None:
        log.error("task.failed", task=name, job_id=job_id, error="unknown task (not registered)")
        return
    try:
        run_async(_run_job(name, fn, job_id, agency_id, kwargs))
    except Exception as exc:
        log.exception("task.failed", task=name, job_id=job_id, error=type(exc).__name__)


class CeleryPublisher:
    """Publishes jobs to the broker; a worker process runs them."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    async def publish(self, task: str, message: dict[str, Any]) -> None:
        await anyio.to_thread.run_sync(lambda: self.app.send_task(task, kwargs=message))

    def wait_idle(self, timeout: float) -> None:
        return None  # another process runs them: nothing to wait for here


class InProcessPublisher:
    """Runs jobs on a small local thread pool (the embedded default, no broker)."""

    def __init__(self, max_workers: int = 2) -> None:
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: set[Future[None]] = set()

    async def publish(self, task: str, message: dict[str, Any]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="switchboard-task"
            )
        future = self._executor.submit(run_in_process, task, message)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)

    def wait_idle(self, timeout: float) -> None:
        wait(list(self._inflight), timeout=timeout)


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
                            col(JobOutbox.completed_at).is_(None),
                            col(JobOutbox.created_at) < cutoff,
                            col(JobOutbox.published_count) < MAX_PUBLISHES,
                        )
                        .order_by(col(JobOutbox.created_at))
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


COMPLETED_GRACE = timedelta(hours=1)  # a completed row is kept this long (inspection)
ABANDONED_AFTER = timedelta(days=30)  # never completed: past every link's lifetime


async def purge_outbox() -> dict[str, int]:
    """Delete completed jobs after a short grace, and jobs abandoned long ago. Called by the
    retention job (services/retention.py)."""
    now = utcnow()
    async with (
        unit_of_work() as session,
        unscoped(session, "retention: purge completed and abandoned outbox jobs"),
    ):
        # A DML statement returns a CursorResult (rowcount); the async stub says Result.
        result = cast(
            "CursorResult[Any]",
            await session.execute(
                delete(JobOutbox).where(
                    or_(
                        col(JobOutbox.completed_at) < now - COMPLETED_GRACE,
                        col(JobOutbox.created_at) < now - ABANDONED_AFTER,
                    )
                )
            ),
        )
    return {"job_outbox": result.rowcount or 0}
