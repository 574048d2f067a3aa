"""Credentials: agency API keys, server-side browser sessions, invitations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Column, ForeignKeyConstraint, Index
from sqlmodel import Field

from services.kit.models import TenantModel
from services.kit.types import JSONType, UTCDateTime, enum_type, utcnow
from tenants.roles import Role


class ApiKey(TenantModel, table=True):
    """An agency API key. Only its SHA-256 is stored; the key is shown once at creation."""

    __tablename__ = "api_keys"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "key"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"key_hash"})
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"last_used_at"})
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        Index("ix_api_keys_hash", "agency_id", "key_hash", unique=True),
    )

    name: str = Field(max_length=120)
    key_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=24)  # shown in lists so a person can tell keys apart
    role: Role = Field(sa_type=enum_type(Role))
    client_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UserSession(TenantModel, table=True):
    """A signed-in browser. The cookie holds the token; the table holds its SHA-256."""

    __tablename__ = "user_sessions"
    __audited__: ClassVar[bool] = False  # sign-in/out are recorded as domain events
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_user_sessions_hash", "agency_id", "token_hash", unique=True),
        Index("ix_user_sessions_user", "agency_id", "user_id"),
    )

    user_id: uuid.UUID
    token_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)
    # Password accepted, second factor still owed: not signed in until it is verified.
    mfa_pending: bool = False
    # Agency staff viewing the portal as this session's user (see Impersonation).
    impersonation_id: uuid.UUID | None = None


class Invitation(TenantModel, table=True):
    """An invitation by e-mail link: single use, expiring, stored as a hash."""

    __tablename__ = "invitations"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "inv"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"token_hash"})
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        Index("ix_invitations_hash", "agency_id", "token_hash", unique=True),
    )

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role = Field(sa_type=enum_type(Role))
    client_id: uuid.UUID | None = None
    token_hash: str = Field(max_length=64)
    invited_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuthThrottle(TenantModel, table=True):
    """Failed sign-in counters for one key: `acct:<e-mail>` or `ip:<address>`.

    Locks are always temporary (exponential, capped), so an attacker can slow a victim's
    sign-in down but never lock them out for good; a password reset clears the account key.
    """

    __tablename__ = "auth_throttles"
    __audited__: ClassVar[bool] = False  # failures are audited as auth.login_failed events
    __table_args__ = (Index("ix_auth_throttles_key", "agency_id", "key", unique=True),)

    key: str = Field(max_length=400)
    failures: int = 0
    window_started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lock_count: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasswordReset(TenantModel, table=True):
    """A password-reset link: single use, expiring, stored as a hash."""

    __tablename__ = "password_resets"
    __audited__: ClassVar[bool] = False  # requests and uses are recorded as auth.* events
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_password_resets_hash", "agency_id", "token_hash", unique=True),
        Index("ix_password_resets_user", "agency_id", "user_id", "created_at"),
    )

    user_id: uuid.UUID
    token_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    requested_ip: str | None = Field(default=None, max_length=64)


class TotpCredential(TenantModel, table=True):
    """A person's authenticator app (RFC 6238). The secret is sealed at rest; `last_step` stops
    a code from being used twice."""

    __tablename__ = "totp_credentials"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"secret_sealed"})
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"last_step"})
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_totp_credentials_user", "agency_id", "user_id", unique=True),
    )

    user_id: uuid.UUID
    secret_sealed: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_step: int = 0


class RecoveryCode(TenantModel, table=True):
    """Single-use codes for when the authenticator is lost; stored as SHA-256."""

    __tablename__ = "recovery_codes"
    __audited__: ClassVar[bool] = False  # their use is recorded as an auth.* event
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_recovery_codes_user", "agency_id", "user_id"),
    )

    user_id: uuid.UUID
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Passkey(TenantModel, table=True):
    """A WebAuthn credential (passkey or security key) registered by a person: a second factor,
    or a sign-in on its own. Only the public key is stored."""

    __tablename__ = "passkeys"
    __public_prefix__: ClassVar[str] = "pk"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"public_key"})
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"sign_count", "last_used_at"})
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_passkeys_credential", "agency_id", "credential_id", unique=True),
        Index("ix_passkeys_user", "agency_id", "user_id"),
    )

    user_id: uuid.UUID
    name: str = Field(max_length=120)  # "MacBook Touch ID", chosen by the person
    credential_id: str = Field(max_length=1400)  # base64url, as the browser reports it
    public_key: str = Field(max_length=4000)  # base64url COSE key
    sign_count: int = 0
    transports: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    aaguid: str | None = Field(default=None, max_length=36)
    backup_eligible: bool = False
    backed_up: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Impersonation(TenantModel, table=True):
    """Agency staff entering a client's portal as one of its people: who, as whom, why, for
    how long. Its audit events carry the client, so the client's owner can read them."""

    __tablename__ = "impersonations"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "imp"
    # Recorded as the domain events impersonation.started / impersonation.ended instead.
    __audited__: ClassVar[bool] = False
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["agency_id", "actor_user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_impersonations_client", "agency_id", "client_id", "started_at"),
    )

    actor_user_id: uuid.UUID  # the staff member
    client_id: uuid.UUID
    user_id: uuid.UUID  # the client's person whose view is entered
    reason: str = Field(max_length=500)
    session_id: uuid.UUID | None = None  # the browser session it runs in
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# ---- upstream sign-in (Google, Microsoft): services/identity/upstream.py --------------------


class UpstreamProvider(TenantModel, table=True):
    """An agency's own OAuth client at Google or Microsoft ("Sign in with ..."). The client
    secret is sealed at rest (bound to the agency and the provider) and never shown again."""

    __tablename__ = "upstream_providers"
    __public_prefix__: ClassVar[str] = "usp"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"client_secret_sealed"})
    __table_args__ = (
        Index("ix_upstream_providers_provider", "agency_id", "provider", unique=True),
    )

    provider: str = Field(max_length=20)  # "google" | "microsoft"
    client_id: str = Field(max_length=200)
    client_secret_sealed: str = Field(max_length=1000)
    # Microsoft only: "common", "organizations" or a directory (tenant) id.
    tenant: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExternalIdentity(TenantModel, table=True):
    """A Google or Microsoft account linked to a person of this agency. `subject` is what the
    provider guarantees never to reassign: Google's `sub`; Microsoft's `<tid>/<oid>`."""

    __tablename__ = "external_identities"
    __public_prefix__: ClassVar[str] = "xid"
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset({"last_used_at"})
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_external_identities_subject", "agency_id", "provider", "subject", unique=True),
        Index("ix_external_identities_user", "agency_id", "user_id"),
    )

    user_id: uuid.UUID
    provider: str = Field(max_length=20)
    subject: str = Field(max_length=255)
    email: str = Field(max_length=320)  # the verified address it was linked by
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
