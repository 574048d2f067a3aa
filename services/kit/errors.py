"""Typed errors that carry their HTTP status; rendered as RFC 9457 problem+json in one place."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://switchboard.dev/problems/"


class SwitchboardError(Exception):
    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(SwitchboardError):
    status, slug, title = 400, "bad-request", "Bad request"


class InvalidCursor(BadRequest):
    """A pagination cursor that does not decode (tampered, stale format, foreign)."""

    slug, title = "invalid-cursor", "Invalid cursor"


class ValidationFailed(SwitchboardError):
    status, slug, title = 422, "validation-error", "The request is not valid"


class Unauthorized(SwitchboardError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="switchboard"'}


class Forbidden(SwitchboardError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(SwitchboardError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(SwitchboardError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidTransition(SwitchboardError):
    status, slug, title = 409, "invalid-transition", "Transition not allowed"


class TooManyAttempts(SwitchboardError):
    status, slug, title = 429, "too-many-attempts", "Too many attempts"

    def __init__(
        self, detail: str | None = None, *, retry_after: int = 60, **extra: object
    ) -> None:
        super().__init__(detail, **extra)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PayloadTooLarge(SwitchboardError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class TenantScopeMissing(SwitchboardError):
    """A query ran with no tenant in scope. Always a bug: fail closed."""

    status, slug, title = 500, "tenant-scope-missing", "Internal error"
