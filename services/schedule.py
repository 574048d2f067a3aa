"""The one beat schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "kit.outbox.sweep": {"task": "kit.outbox.sweep", "schedule": timedelta(minutes=1)},
    "maintenance.purge_expired": {
        "task": "maintenance.purge_expired",
        "schedule": timedelta(hours=6),
    },
}
