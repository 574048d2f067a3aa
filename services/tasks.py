"""The one list of task modules, and the wiring that makes jobs run.

Every domain that defines tasks adds its module to TASK_MODULES, once. `wire()` imports them
all (registering their tasks with Celery and with the in-process runner alike), gives the
Celery app the same list and the beat schedule, and installs the job publisher that the
settings call for in the kit's registration point (services/kit/jobs.py): Celery when a
broker is configured, the in-process pool otherwise. The web app, the CLI and the Celery
worker (`celery -A services.tasks:celery_app`) all start from here.
"""

from __future__ import annotations

import importlib

from celery import Celery

from services.kit import jobs
from services.schedule import BEAT_SCHEDULE
from services.settings import Settings, get_settings
from services.worker import CeleryPublisher, InProcessPublisher
from services.worker import celery_app as _celery_app

TASK_MODULES: tuple[str, ...] = (
    "services.worker",  # kit.outbox.sweep
    "services.retention",  # maintenance.purge_expired
    "services.identity.tasks",
    "services.oauth2.tasks",
)


def register_all() -> None:
    """Import every task module (idempotent): their decorators register the tasks."""
    for name in TASK_MODULES:
        importlib.import_module(name)


def wire(settings: Settings | None = None) -> Celery:
    """Register every task and install the publisher the settings call for."""
    settings = settings or get_settings()
    register_all()
    _celery_app.conf.include = list(TASK_MODULES)
    _celery_app.conf.beat_schedule = BEAT_SCHEDULE
    current = jobs.get_publisher()
    if settings.tasks_in_process:
        if not isinstance(current, InProcessPublisher):
            jobs.set_publisher(InProcessPublisher())
    elif not isinstance(current, CeleryPublisher):
        jobs.set_publisher(CeleryPublisher(_celery_app))
    return _celery_app


# The Celery entry point (worker and beat): importing this module wires the process.
celery_app = wire()
