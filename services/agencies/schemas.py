"""API shapes for agencies."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, HttpUrl

from services.kit import ids
from services.kit.schemas import CLEARABLE, Output, PatchInput, StrictInput
from tenants.models import Agency, AgencyStatus

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_SLUGS = frozenset({"admin", "api", "static", "www", "platform", "metrics", "healthz"})


def _slug(v: str) -> str:
    if not SLUG_RE.match(v):
        raise ValueError("lowercase letters, digits and inner hyphens, 1-63 characters")
    if v in RESERVED_SLUGS:
        raise ValueError(f"{v!r} is reserved")
    return v


def _color(v: str) -> str:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", v):
        raise ValueError("a colour is #RRGGBB")
    return v.lower()


Slug = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_slug)]
Color = Annotated[str, Field(max_length=7), AfterValidator(_color)]


class Branding(PatchInput):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    brand_logo_url: Annotated[HttpUrl | None, CLEARABLE] = None
    brand_primary_color: Color | None = None
    brand_accent_color: Color | None = None
    support_email: Annotated[EmailStr | None, CLEARABLE] = None
    mail_from_name: Annotated[str | None, CLEARABLE] = Field(
        default=None, min_length=1, max_length=120
    )
    mail_from_address: Annotated[EmailStr | None, CLEARABLE] = None
    mfa_required: bool | None = None


class AgencyCreate(StrictInput):
    slug: Slug
    name: str = Field(min_length=1, max_length=200)
    admin_email: EmailStr
    admin_name: str = Field(default="", max_length=200)
    admin_password: str | None = Field(default=None, min_length=10, max_length=1024)


class AgencyUpdate(Branding):
    status: AgencyStatus | None = None


class AgencyOut(Output):
    id: str
    slug: str
    name: str
    status: AgencyStatus
    brand_logo_url: str | None
    brand_primary_color: str
    brand_accent_color: str
    support_email: str | None
    mail_from_name: str | None
    mail_from_address: str | None
    mfa_required: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, agency: Agency) -> AgencyOut:
        data = {k: getattr(agency, k) for k in cls.model_fields if k != "id"}
        return cls.model_validate({**data, "id": ids.encode("agy", agency.id)})


class AgencyCreated(Output):
    agency: AgencyOut
    owner_user_id: str
    api_key: str = Field(description="shown once; store it now")
    invitation_url: str | None = None


class AgencyPage(Output):
    items: list[AgencyOut]
    next_cursor: str | None
