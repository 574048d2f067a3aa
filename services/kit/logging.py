"""Structured JSON logs with request id, agency id and user id from context variables."""

from __future__ import annotations

import logging
import sys
from functools import lru_cache
from typing import Any

import structlog

_SECRET_KEYS = ("password", "token", "secret", "authorization", "api_key", "cookie")


@lru_cache(maxsize=2048)
def _secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(s in lowered for s in _SECRET_KEYS)


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Values under a key that names a secret are replaced, except numbers and booleans
    (`tokens_revoked=3`, `password_resets=12`: counts, never the secret itself)."""
    for key, value in event.items():
        if (
            value is not None
            and not isinstance(value, int | float)
            and isinstance(key, str)
            and _secret_key(key)
        ):
            event[key] = "[redacted]"
    return event


class _StderrLogger:
    """Writes each rendered line to whatever sys.stderr is at that moment."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*_: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `db upgrade` reports itself
