"""API shapes for users, memberships, invitations and API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import EmailStr, Field

from services.identity.models import ApiKey, Invitation
from services.kit import ids
from services.kit.schemas import AwareDateTime, Output, PatchInput, StrictInput
from tenants.models import Membership, User, UserStatus
from tenants.roles import Role


class MembershipOut(Output):
    id: str
    user_id: str
    role: Role
    client_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, m: Membership) -> MembershipOut:
        return cls(
            id=ids.encode("mem", m.id),
            user_id=ids.encode("usr", m.user_id),
            role=Role(m.role),
            client_id=ids.encode("cli", m.client_id) if m.client_id else None,
            created_at=m.created_at,
        )


class UserOut(Output):
    id: str
    email: str
    name: str
    status: UserStatus
    email_verified: bool
    last_login_at: datetime | None
    created_at: datetime
    memberships: list[MembershipOut]

    @classmethod
    def of(cls, u: User, memberships: list[Membership]) -> UserOut:
        return cls(
            id=ids.encode("usr", u.id),
            email=u.email,
            name=u.name,
            status=UserStatus(u.status),
            email_verified=u.email_verified,
            last_login_at=u.last_login_at,
            created_at=u.created_at,
            memberships=[MembershipOut.of(m) for m in memberships],
        )


class UserPage(Output):
    items: list[UserOut]
    next_cursor: str | None


class UserUpdate(PatchInput):
    name: str | None = Field(default=None, max_length=200)
    status: UserStatus | None = None


class MembershipCreate(StrictInput):
    user_id: str = Field(max_length=40)
    role: Role
    client_id: str | None = Field(default=None, max_length=40)


class MembershipUpdate(PatchInput):
    role: Role


class InvitationCreate(StrictInput):
    email: EmailStr
    name: str = Field(default="", max_length=200)
    role: Role
    client_id: str | None = Field(default=None, max_length=40)


class InvitationOut(Output):
    id: str
    email: str
    name: str
    role: Role
    client_id: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None

    @classmethod
    def of(cls, inv: Invitation, now: datetime) -> InvitationOut:
        if inv.accepted_at:
            status = "accepted"
        elif inv.revoked_at:
            status = "revoked"
        elif inv.expires_at <= now:
            status = "expired"
        else:
            status = "pending"
        return cls(
            id=ids.encode("inv", inv.id),
            email=inv.email,
            name=inv.name,
            role=Role(inv.role),
            client_id=ids.encode("cli", inv.client_id) if inv.client_id else None,
            status=status,
            created_at=inv.created_at,
            expires_at=inv.expires_at,
            accepted_at=inv.accepted_at,
        )


class InvitationCreated(InvitationOut):
    url: str = Field(description="the single-use link (also e-mailed); shown once")


class ApiKeyCreate(StrictInput):
    name: str = Field(min_length=1, max_length=120)
    role: Role | None = None
    client_id: str | None = Field(default=None, max_length=40)
    expires_at: AwareDateTime | None = None


class ApiKeyOut(Output):
    id: str
    name: str
    prefix: str
    role: Role
    client_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyOut:
        return cls(
            id=ids.encode("key", k.id),
            name=k.name,
            prefix=k.prefix,
            role=Role(k.role),
            client_id=ids.encode("cli", k.client_id) if k.client_id else None,
            created_at=k.created_at,
            last_used_at=k.last_used_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret; shown once, store it now")
