"""The tenancy kernel's tables: Agency (tenant root), Client (the one client record), User,
Membership, ClientAssignment (agency staff ↔ clients) and the append-only AuditEvent log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Column, ForeignKeyConstraint, Index, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.kit.models import TenantModel, Timestamped
from services.kit.types import JSONType, UTCDateTime, enum_type, utcnow
from tenants.roles import Role


class AgencyStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Agency(Timestamped, SQLModel, table=True):
    """The tenant root. Its own row is visible to its own principals only."""

    if TYPE_CHECKING:  # set by SQLAlchemy's declarative mapping; SQLModel does not declare it
        __table__: ClassVar[Table]

    __tablename__ = "agencies"
    __public_prefix__: ClassVar[str] = "agy"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(max_length=63, unique=True, index=True)
    name: str = Field(max_length=200)
    status: AgencyStatus = Field(default=AgencyStatus.ACTIVE, sa_type=enum_type(AgencyStatus))
    brand_logo_url: str | None = Field(default=None, max_length=2000)
    brand_primary_color: str = Field(default="#2563eb", max_length=7)
    brand_accent_color: str = Field(default="#0f172a", max_length=7)
    support_email: str | None = Field(default=None, max_length=320)
    # The sender of the e-mail the platform sends for this agency (invitations, resets).
    mail_from_name: str | None = Field(default=None, max_length=120)
    mail_from_address: str | None = Field(default=None, max_length=320)
    # Everyone must set up two-step sign-in before using the portal or signing in to apps.
    mfa_required: bool = False


class LifecycleStage(StrEnum):
    PROSPECT = "prospect"
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    PAUSED = "paused"
    CHURNED = "churned"


class Client(TenantModel, Timestamped, table=True):
    """The SMB: the ONE client record every connector reads and enriches."""

    __tablename__ = "clients"
    __client_column__: ClassVar[str | None] = "id"
    __public_prefix__: ClassVar[str] = "cli"
    __table_args__ = (
        Index("ix_clients_agency_created", "agency_id", "created_at", "id"),
        Index("ix_clients_agency_name", "agency_id", "display_name", "id"),
        Index("ix_clients_agency_stage", "agency_id", "lifecycle_stage"),
    )

    legal_name: str = Field(max_length=200)
    display_name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    website: str | None = Field(default=None, max_length=2000)
    street: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=120)
    region: str | None = Field(default=None, max_length=120)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, max_length=2)
    timezone: str = Field(default="UTC", max_length=64)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    hours: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    notes: str | None = Field(default=None, max_length=5000)
    lifecycle_stage: LifecycleStage = Field(
        default=LifecycleStage.PROSPECT, sa_type=enum_type(LifecycleStage)
    )
    lifecycle_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(TenantModel, Timestamped, table=True):
    """A person who signs in. Users live inside one agency (their identity realm)."""

    __tablename__ = "users"
    __public_prefix__: ClassVar[str] = "usr"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"password_hash"})
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"last_login_at"})
    __table_args__ = (UniqueConstraint("agency_id", "email"),)

    email: str = Field(max_length=320)  # stored lower-cased
    name: str = Field(default="", max_length=200)
    password_hash: str | None = Field(default=None, max_length=500)
    status: UserStatus = Field(default=UserStatus.ACTIVE, sa_type=enum_type(UserStatus))
    email_verified: bool = False
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Membership(TenantModel, table=True):
    """A role at agency scope (client_id NULL) or at one client's scope."""

    __tablename__ = "memberships"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "mem"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        Index("ix_memberships_user", "agency_id", "user_id"),
        Index("ix_memberships_client", "agency_id", "client_id"),
    )

    user_id: uuid.UUID
    role: Role = Field(sa_type=enum_type(Role))
    client_id: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClientAssignment(TenantModel, table=True):
    """Agency staff assigned to a client; staff see only their assigned clients."""

    __tablename__ = "client_assignments"
    __client_column__: ClassVar[str | None] = "client_id"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("agency_id", "client_id", "user_id"),
        Index("ix_client_assignments_user", "agency_id", "user_id"),
    )

    client_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEvent(TenantModel, table=True):
    """Who did what, in which tenant, from where. Append-only (enforced by grants on PG)."""

    __tablename__ = "audit_events"
    __client_column__: ClassVar[str | None] = "client_id"
    __audited__: ClassVar[bool] = False
    __public_prefix__: ClassVar[str] = "aud"
    __table_args__ = (
        Index("ix_audit_events_agency_time", "agency_id", "occurred_at", "id"),
        Index("ix_audit_events_agency_target", "agency_id", "target_id"),
    )

    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_type: str = Field(max_length=20)  # user | api_key | operator | system
    actor_id: uuid.UUID | None = None
    actor_label: str = Field(default="", max_length=320)
    action: str = Field(max_length=80)  # e.g. client.created
    target_type: str = Field(max_length=40)
    target_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    request_id: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    unscoped_reason: str | None = Field(default=None, max_length=200)
