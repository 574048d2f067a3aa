"""The one beat schedule, run by Celery beat on a broker and by `InProcessBeat` in the web
process on the embedded default (no beat there): the same entries, the same tasks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import anyio
import structlog
from celery import Celery

log = structlog.get_logger("switchboard.schedule")

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "kit.outbox.sweep": {"task": "kit.outbox.sweep", "schedule": timedelta(minutes=1)},
    "maintenance.purge_expired": {
        "task": "maintenance.purge_expired",
        "schedule": timedelta(hours=6),
    },
}


class InProcessBeat:
    """Runs every BEAT_SCHEDULE entry at its interval (first at start), each task on a worker
    thread through the same Celery task object a worker would run. A failure is logged with
    the task's name and retried at the next interval."""

    def __init__(self, app: Celery, schedule: dict[str, dict[str, Any]] | None = None) -> None:
        self.app = app
        self.schedule = BEAT_SCHEDULE if schedule is None else schedule
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for name, entry in self.schedule.items():
            every = entry["schedule"]
            if not isinstance(every, timedelta):
                raise TypeError(f"{name}: the in-process beat runs timedelta schedules only")
            self._tasks.append(loop.create_task(self._run(entry["task"], every), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def run_once(self, task_name: str) -> Any:
        task = self.app.tasks[task_name]
        return await anyio.to_thread.run_sync(task)

    async def _run(self, task_name: str, every: timedelta) -> None:
        while True:
            try:
                await self.run_once(task_name)
            except Exception as exc:
                log.warning("beat.task_failed", task=task_name, error=type(exc).__name__)
            await asyncio.sleep(every.total_seconds())
