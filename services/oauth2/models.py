"""Tables of the OpenID Connect provider. All tenant rows: an agency's relying parties, keys,
codes, tokens and consents are invisible to every other agency (scoping hooks and RLS).

Secrets are never stored: client secrets, authorization codes, refresh tokens and access-token
ids (`jti`) are kept as SHA-256 hashes; private signing keys are encrypted (AES-GCM, key
derived from the installation secret, see `keys.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, ForeignKeyConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field

from services.kit.models import TenantModel, Timestamped
from services.kit.types import JSONType, UTCDateTime, enum_type, utcnow


class ClientType(StrEnum):
    CONFIDENTIAL = "confidential"  # a server that keeps a secret
    PUBLIC = "public"  # a browser or native app: no secret, PKCE (S256) mandatory


class OAuthClient(TenantModel, Timestamped, table=True):
    """A relying party (a solution app) registered by the agency."""

    __tablename__ = "oauth_clients"
    __public_prefix__: ClassVar[str] = "oac"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"secret_hash"})

    name: str = Field(max_length=120)
    client_type: ClientType = Field(sa_type=enum_type(ClientType))
    secret_hash: str | None = Field(default=None, max_length=64)
    secret_hint: str | None = Field(default=None, max_length=12)  # last characters, for people
    redirect_uris: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    post_logout_redirect_uris: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    allowed_scopes: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    grant_types: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # The agency's own solution: users are not asked for consent.
    first_party: bool = False
    # A solution sold to clients: listed in the client portal ("Open") for the clients it is
    # enabled for (`ClientSolution`); a client's people may sign in to it only then.
    solution: bool = False
    description: str | None = Field(default=None, max_length=300)
    # OpenID Connect third-party-initiated login: "Open" sends the browser here with `iss`
    # (and `login_hint`, `target_link_uri`), and the app starts its own authorization.
    initiate_login_uri: str | None = Field(default=None, max_length=2000)
    id_token_signed_response_alg: str = Field(default="RS256", max_length=10)
    # OpenID Connect Back-Channel Logout 1.0: where the provider POSTs a logout token when a
    # person's portal session ends (checked by services/kit/outbound.py).
    backchannel_logout_uri: str | None = Field(default=None, max_length=2000)
    backchannel_logout_session_required: bool = False
    created_by: uuid.UUID | None = None


class KeyStatus(StrEnum):
    ACTIVE = "active"  # signs new tokens (the newest active key of its algorithm)
    RETIRED = "retired"  # published in the JWKS until the tokens it signed have expired


class SigningKey(TenantModel, table=True):
    """One of the agency's token-signing keys. The private half is encrypted at rest."""

    __tablename__ = "oauth_signing_keys"
    __public_prefix__: ClassVar[str] = "osk"
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"private_key_encrypted"})
    __table_args__ = (
        UniqueConstraint("agency_id", "kid"),
        Index("ix_oauth_signing_keys_status", "agency_id", "status"),
    )

    kid: str = Field(max_length=64)
    alg: str = Field(max_length=10)  # RS256 | ES256
    status: KeyStatus = Field(default=KeyStatus.ACTIVE, sa_type=enum_type(KeyStatus))
    public_jwk: dict[str, str] = Field(sa_column=Column(JSONType, nullable=False))
    private_key_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Retired keys leave the JWKS after this moment (every token they signed has expired).
    publish_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuthorizationCode(TenantModel, table=True):
    """A single-use, short-lived authorization code (stored as its SHA-256)."""

    __tablename__ = "oauth_authorization_codes"
    __audited__: ClassVar[bool] = False  # issuance is routine; misuse is a domain event
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"],
            ["oauth_clients.agency_id", "oauth_clients.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_oauth_authorization_codes_hash", "agency_id", "code_hash", unique=True),
        Index("ix_oauth_authorization_codes_nonce", "agency_id", "client_id", "nonce"),
    )

    code_hash: str = Field(max_length=64)
    client_id: uuid.UUID
    user_id: uuid.UUID
    redirect_uri: str = Field(max_length=2000)
    scope: str = Field(max_length=2000)
    nonce: str | None = Field(default=None, max_length=255)
    code_challenge: str | None = Field(default=None, max_length=128)
    code_challenge_method: str | None = Field(default=None, max_length=10)
    auth_time: datetime = Field(sa_type=UTCDateTime)
    session_id: uuid.UUID | None = None  # the browser session it was issued in
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TokenKind(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class OAuthToken(TenantModel, table=True):
    """An issued access token (by the hash of its `jti`) or refresh token (by its hash).

    Tokens issued from one authorization form a family: each refresh rotates to a new
    refresh token in the same family; presenting a rotated one revokes the whole family.
    """

    __tablename__ = "oauth_tokens"
    __audited__: ClassVar[bool] = False  # high volume; misuse and revocation are domain events
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"],
            ["oauth_clients.agency_id", "oauth_clients.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_oauth_tokens_hash", "agency_id", "token_hash", unique=True),
        Index("ix_oauth_tokens_family", "agency_id", "family_id"),
        Index("ix_oauth_tokens_code", "agency_id", "code_id"),
        Index("ix_oauth_tokens_session", "agency_id", "session_id"),
    )

    kind: TokenKind = Field(sa_type=enum_type(TokenKind))
    token_hash: str = Field(max_length=64)
    family_id: uuid.UUID
    client_id: uuid.UUID
    user_id: uuid.UUID | None = None  # None: a machine token (client credentials)
    scope: str = Field(default="", max_length=2000)
    code_id: uuid.UUID | None = None  # the authorization code the family started from
    session_id: uuid.UUID | None = None  # the browser session the family started in
    auth_time: datetime | None = Field(default=None, sa_type=UTCDateTime)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # refresh: rotated
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Consent(TenantModel, Timestamped, table=True):
    """What a person allowed a relying party to receive (remembered per user and client)."""

    __tablename__ = "oauth_consents"
    __public_prefix__: ClassVar[str] = "ocs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"],
            ["oauth_clients.agency_id", "oauth_clients.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["agency_id", "user_id"], ["users.agency_id", "users.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("agency_id", "user_id", "client_id"),
    )

    user_id: uuid.UUID
    client_id: uuid.UUID
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))


class SessionClient(TenantModel, table=True):
    """A relying party that a portal session signed in to (an authorization code was issued to
    it in that session): told through back-channel logout when the session ends."""

    __tablename__ = "oauth_session_clients"
    __audited__: ClassVar[bool] = False  # routine, like the codes it follows
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "session_id"],
            ["user_sessions.agency_id", "user_sessions.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["agency_id", "client_id"],
            ["oauth_clients.agency_id", "oauth_clients.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("agency_id", "session_id", "client_id"),
        Index("ix_oauth_session_clients_client", "agency_id", "client_id"),
    )

    session_id: uuid.UUID
    client_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClientSolution(TenantModel, table=True):
    """A solution (a relying party with `solution=True`) enabled for one client."""

    __tablename__ = "client_solutions"
    __client_column__: ClassVar[str | None] = "client_id"
    __public_prefix__: ClassVar[str] = "csl"
    __table_args__ = (
        ForeignKeyConstraint(
            ["agency_id", "client_id"], ["clients.agency_id", "clients.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["agency_id", "oauth_client_id"],
            ["oauth_clients.agency_id", "oauth_clients.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("agency_id", "client_id", "oauth_client_id"),
        Index("ix_client_solutions_app", "agency_id", "oauth_client_id"),
    )

    client_id: uuid.UUID
    oauth_client_id: uuid.UUID
    enabled_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
