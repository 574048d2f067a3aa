"""Shared API shapes: strict input models and the input types every door uses (aware
date-times, text without NUL, PATCH fields that refuse null), cursors, public-id fields."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, field_validator
from pydantic import ValidationInfo as _Info

from services.kit import ids
from services.kit.errors import InvalidCursor, NotFound, ValidationFailed


class _Keyed(Protocol):
    """A row of a keyset page: the cursor ends with its id."""

    @property
    def id(self) -> Any: ...


T = TypeVar("T", bound=_Keyed)
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


# ---- input types -----------------------------------------------------------------------------

NUL_MESSAGE = "must not contain NUL characters"


_COLLECTIONS = (dict, list, tuple, set, frozenset)


def has_nul(value: Any) -> bool:
    """Whether a NUL character appears in any string of an input value (dict keys included).
    PostgreSQL text cannot hold one, and other tools cut a string short at it. (Every
    statement's parameters pass here: scalars are checked in place, not by a call each.)"""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        items: Any = value.items()
        for k, v in items:
            if isinstance(k, str) and "\x00" in k:
                return True
            if isinstance(v, str):
                if "\x00" in v:
                    return True
            elif isinstance(v, _COLLECTIONS) and has_nul(v):
                return True
        return False
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            if isinstance(v, str):
                if "\x00" in v:
                    return True
            elif isinstance(v, _COLLECTIONS) and has_nul(v):
                return True
        return False
    return False


def refuse_nul(value: Any) -> Any:
    if has_nul(value):
        raise ValueError(NUL_MESSAGE)
    return value


# Text from a query string or a form that is not read through a StrictInput model.
Text = Annotated[str, AfterValidator(refuse_nul)]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is past datetime.max in UTC
        raise ValueError("is out of range: it must fall between years 1 and 9999 in UTC") from exc


# Every date-time a request carries: with an offset (a naive one is a 422 naming the field),
# within range once in UTC, and kept in UTC.
AwareDateTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


def parse_aware_datetime(value: Any) -> datetime:
    """An ISO 8601 date-time with offset, in UTC; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError("not a date-time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("a date-time without offset")
    return _in_utc(parsed)


class StrictInput(BaseModel):
    """Request bodies: unknown fields are an error, strings are stripped, and no text anywhere
    in them (nested values and keys included) holds a NUL character."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


class Clearable:
    """Marks a PatchInput field that null empties (`Annotated[str | None, CLEARABLE]`)."""

    def __repr__(self) -> str:
        return "CLEARABLE"


CLEARABLE = Clearable()


def _is_clearable(model: type[BaseModel], name: str) -> bool:
    return any(isinstance(m, Clearable) for m in model.model_fields[name].metadata)


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The published schema of a PATCH body: a field that cannot be null is not nullable."""
    for name, prop in schema.get("properties", {}).items():
        if name not in model.model_fields or _is_clearable(model, name):
            continue
        variants = [v for v in prop.pop("anyOf", []) if v != {"type": "null"}]
        if len(variants) == 1:
            prop.update(variants[0])
        elif variants:
            prop["anyOf"] = variants
        if prop.get("default", ...) is None:
            del prop["default"]


class PatchInput(StrictInput):
    """PATCH bodies. Every field may be left out (it stays as it is; its Python value is then
    None), but null is accepted only for fields marked CLEARABLE, whose column may be empty:
    for every other field null is a 422 naming it, never a NOT NULL violation at the database."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_if_clearable(cls, value: Any, info: _Info) -> Any:
        if value is None and info.field_name and not _is_clearable(cls, info.field_name):
            raise ValueError("cannot be null; leave it out to keep the current value")
        return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


_BAD_CURSOR = "the cursor is not valid; start again without it"


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError
        if has_nul(values):
            raise ValueError
        return values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor(_BAD_CURSOR, field="cursor") from exc


def text_key(value: Any) -> str:
    """A cursor's sort value that is text."""
    if not isinstance(value, str):
        raise ValueError("not text")
    return value


def decode_keyset(
    cursor: str | None, parse: Callable[[Any], Any] = parse_aware_datetime
) -> tuple[Any, uuid.UUID] | None:
    """A cursor made by `paginate` back into (sort value, id): by default an aware date-time
    (`parse_aware_datetime`) or text (`text_key`). One that does not decode is a 400."""
    if not cursor:
        return None
    raw = decode_cursor(cursor, 2)
    try:
        return parse(raw[0]), uuid.UUID(raw[1])
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidCursor(_BAD_CURSOR, field="cursor") from exc


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
