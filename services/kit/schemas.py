"""Shared API shapes: strict input models, cursors, public-id fields."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.kit import ids
from services.kit.errors import NotFound, ValidationFailed

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
