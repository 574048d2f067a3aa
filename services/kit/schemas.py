"""Shared API shapes: strict input models, cursors, public-id fields."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from services.kit import ids
from services.kit.errors import NotFound, ValidationFailed


class _Keyed(Protocol):
    """A row of a keyset page: the cursor ends with its id."""

    @property
    def id(self) -> Any: ...


T = TypeVar("T", bound=_Keyed)
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class StrictInput(BaseModel):
    """Request bodies: unknown fields are an error, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError
        return values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValidationFailed("the cursor is not valid", field="cursor") from exc


def decode_keyset(
    cursor: str | None, parse: Callable[[Any], Any] = datetime.fromisoformat
) -> tuple[Any, uuid.UUID] | None:
    """A cursor made by `paginate` back into (sort value, id); a bad one is a 422."""
    if not cursor:
        return None
    raw = decode_cursor(cursor, 2)
    try:
        return parse(raw[0]), uuid.UUID(raw[1])
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationFailed("the cursor is not valid", field="cursor") from exc


def paginate(rows: Sequence[T], limit: int, key: Callable[[T], Any]) -> tuple[list[T], str | None]:
    """Given up to limit+1 rows in keyset order, the page and the cursor to the next one."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    last = page[-1]
    value = key(last)
    return page, encode_cursor(
        [value.isoformat() if isinstance(value, datetime) else value, str(last.id)]
    )


def path_id(prefix: str, public_id: str, what: str) -> uuid.UUID:
    """Decode a public id from a path; anything that is not one is simply not found."""
    value = ids.decode(prefix, public_id)
    if value is None:
        raise NotFound(f"no such {what}")
    return value


def body_id(prefix: str, public_id: str, field: str) -> uuid.UUID:
    value = ids.decode(prefix, public_id)
    if value is None:
        raise ValidationFailed(f"{field} is not a valid {prefix}_ id", field=field)
    return value
