"""SCIM tables: provisioning tokens, the SCIM side of a user (externalId, name parts, e-mail
addresses), and the groups a directory sees.

A user's sign-in identity stays in `users` (userName = `users.email`, name.formatted =
`users.name`, active = `users.status`); `scim_user_profiles` keeps only what a directory sends
that the product has no column for. Groups are rows so that they have stable ids and an
externalId: the built-in ones (one per agency role, two per client team) are created on
demand and their members are the memberships they stand for; "directory" groups are created
by the directory itself and keep their own member list.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field

from services.kit.models import TenantModel
from services.kit.types import UTCDateTime, enum_type, utcnow
from tenants.roles import Role


class ScimToken(TenantModel, table=True):
    """A bearer token a directory uses to provision one agency. Only its SHA-256 is kept."""

    __tablename__ = "scim_tokens"
    __public_prefix__: ClassVar[str] = "sct"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"token_hash"})
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"last_used_at"})
    __table_args__ = (Index("ix_scim_tokens_hash", "agency_id", "token_hash", unique=True),)

    name: str = Field(max_length=120)
    token_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=24)  # shown in lists so a person can tell tokens apart
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ScimUserProfile(TenantModel, table=True):
    """The SCIM attributes of a user that `users` has no column for. `id` is the user's id."""

    __tablename__ = "scim_user_profiles"
    __public_prefix__: ClassVar[str] = "usr"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_scim_user_profiles_external", "agency_id", "external_id"),
    )

    external_id: str | None = Field(default=None, max_length=255)
    given_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    # Set when the directory DELETEs the user: the person stays in Switchboard, disabled and
    # without roles (their history keeps its author), but no longer exists for the directory.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ScimUserEmail(TenantModel, table=True):
    """One of a user's `emails` values, as the directory sent them (in order)."""

    __tablename__ = "scim_user_emails"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_scim_user_emails_user", "agency_id", "user_id", "position"),
        Index("ix_scim_user_emails_value", "agency_id", "value"),
    )

    user_id: uuid.UUID
    position: int = 0
    value: str = Field(max_length=320)
    type: str | None = Field(default=None, max_length=40)
    is_primary: bool | None = None  # as sent: true, false or not given


class GroupKind(StrEnum):
    ROLE = "role"  # an agency-wide role: members are agency memberships with that role
    TEAM = "team"  # a client's owners or members: client memberships with that role
    DIRECTORY = "directory"  # created by the directory; grants nothing by itself


class ScimGroup(TenantModel, table=True):
    """A group as a directory sees it. `key` names what a built-in group stands for."""

    __tablename__ = "scim_groups"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "grp"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("agency_id", "key"),
        Index("ix_scim_groups_client", "agency_id", "client_id"),
    )

    key: str = Field(max_length=80)  # role:agency_admin | team:<client>:client_owner | dir:<id>
    kind: GroupKind = Field(sa_type=enum_type(GroupKind))
    role: Role | None = Field(default=None, sa_type=enum_type(Role))
    client_id: uuid.UUID | None = None
    display_name: str = Field(default="", max_length=255)  # directory groups only
    external_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ScimGroupMember(TenantModel, table=True):
    """A member of a directory group (built-in groups read their members from memberships)."""

    __tablename__ = "scim_group_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "group_id"],
            ["scim_groups.agency_id", "scim_groups.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("agency_id", "group_id", "user_id"),
        Index("ix_scim_group_members_user", "agency_id", "user_id"),
    )

    group_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
