"""API shapes for the client record."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

import phonenumbers
from pydantic import AfterValidator, EmailStr, Field, HttpUrl, field_validator

from services.kit import ids
from services.kit.schemas import CLEARABLE, Output, PatchInput, StrictInput
from tenants.models import Client, LifecycleStage


class ClientSort(StrEnum):
    """The orders of the client list (`?sort=`)."""

    NEWEST = "-created_at"
    OLDEST = "created_at"
    NAME = "display_name"


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(v: str) -> str:
    if v not in _zones():
        raise ValueError("must be an IANA time zone such as Europe/Paris")
    return v


def _country(v: str) -> str:
    v = v.upper()
    if not re.fullmatch(r"[A-Z]{2}", v):
        raise ValueError("must be an ISO 3166-1 alpha-2 code such as FR")
    return v


def _category(v: str) -> str:
    if not v:
        raise ValueError("categories cannot be empty strings")
    return v


Name = Annotated[str, Field(min_length=1, max_length=200)]
Timezone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Country = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(_country)]
Category = Annotated[str, Field(max_length=60), AfterValidator(_category)]


def normalize_phone(value: str, country: str | None) -> str:
    try:
        parsed = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            "not a phone number; give it in international form (+33 1 23 45 67 89) "
            "or set the country"
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _hours(v: dict[str, list[str]]) -> dict[str, list[str]]:
    for day, spans in v.items():
        if day not in _DAYS:
            raise ValueError(f"unknown day {day!r}; use {', '.join(_DAYS)}")
        if len(spans) > 6:
            raise ValueError("at most 6 opening spans a day")
        for span in spans:
            if not _SPAN.match(span):
                raise ValueError(f"{span!r} is not a HH:MM-HH:MM span")
    return v


Hours = Annotated[dict[str, list[str]], AfterValidator(_hours)]


class _ClientFields(StrictInput):
    # All of these may be emptied by a PATCH (null): categories, hours and staff to none.
    email: Annotated[EmailStr | None, CLEARABLE] = None
    phone: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=40)
    website: Annotated[HttpUrl | None, CLEARABLE] = None
    street: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=200)
    city: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=120)
    region: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=120)
    postal_code: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=20)
    country: Annotated[Country | None, CLEARABLE] = None
    categories: Annotated[list[Category] | None, CLEARABLE] = Field(default=None, max_length=20)
    hours: Annotated[Hours | None, CLEARABLE] = None
    notes: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=5000)
    assigned_staff: Annotated[list[str] | None, CLEARABLE] = Field(
        default=None, max_length=50, description="user ids (usr_...) of agency staff"
    )

    @field_validator("website", mode="before")
    @classmethod
    def _website_scheme(cls, v: Any) -> Any:
        if isinstance(v, str) and v and "://" not in v:
            return "https://" + v
        return v

    def normalized_phone(self) -> str | None:
        return normalize_phone(self.phone, self.country) if self.phone else None


class ClientCreate(_ClientFields):
    legal_name: Name
    display_name: Name | None = None
    timezone: Timezone = "UTC"
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT


class ClientUpdate(PatchInput, _ClientFields):
    legal_name: Name | None = None
    display_name: Name | None = None
    timezone: Timezone | None = None


class LifecycleChange(StrictInput):
    stage: LifecycleStage
    reason: str | None = Field(default=None, max_length=500)


class ClientOut(Output):
    id: str
    legal_name: str
    display_name: str
    email: str | None
    phone: str | None
    website: str | None
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    timezone: str
    categories: list[str]
    hours: dict[str, Any]
    notes: str | None
    lifecycle_stage: LifecycleStage
    lifecycle_changed_at: datetime
    assigned_staff: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, client: Client, staff: list[Any] | None = None) -> ClientOut:
        data = {k: getattr(client, k) for k in cls.model_fields if hasattr(client, k)}
        data["id"] = ids.encode("cli", client.id)
        data["assigned_staff"] = [ids.encode("usr", u) for u in (staff or [])]
        return cls.model_validate(data)

    @classmethod
    def of_row(cls, row: Mapping[str, Any], staff: list[Any]) -> ClientOut:
        """From a `clients` row read outside the ORM (services.clients.repository)."""
        data = {k: row[k] for k in cls.model_fields if k in row}
        data["id"] = ids.encode("cli", row["id"])
        data["assigned_staff"] = [ids.encode("usr", u) for u in staff]
        return cls.model_validate(data)


class ClientPage(Output):
    items: list[ClientOut]
    next_cursor: str | None
