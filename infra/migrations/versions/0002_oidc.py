"""OpenID Connect provider: relying parties, signing keys, codes, tokens, consents

Revision ID: 0002
Revises: 0001
Every table is a tenant table (primary key (agency_id, id), foreign keys lead with
agency_id) under FORCE ROW LEVEL SECURITY on PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import JSONType, UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_columns() -> list[sa.Column]:
    return [
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
    ]


def _agency_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id"], ["agencies.id"], name=f"fk_{table}_agency_id_agencies", ondelete="CASCADE"
    )


def _client_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id", "client_id"],
        ["oauth_clients.agency_id", "oauth_clients.id"],
        name=f"fk_{table}_agency_id_client_id_oauth_clients",
        ondelete="CASCADE",
    )


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id", "user_id"],
        ["users.agency_id", "users.id"],
        name=f"fk_{table}_agency_id_user_id_users",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        *_tenant_columns(),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("client_type", sa.String(length=20), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("secret_hint", sa.String(length=12), nullable=True),
        sa.Column("redirect_uris", JSONType, nullable=False),
        sa.Column("post_logout_redirect_uris", JSONType, nullable=False),
        sa.Column("allowed_scopes", JSONType, nullable=False),
        sa.Column("grant_types", JSONType, nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("id_token_signed_response_alg", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _agency_fk("oauth_clients"),
        sa.PrimaryKeyConstraint("agency_id", "id", name="pk_oauth_clients"),
    )
    op.create_table(
        "oauth_signing_keys",
        *_tenant_columns(),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("public_jwk", JSONType, nullable=False),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("publish_until", UTCDateTime(), nullable=True),
        _agency_fk("oauth_signing_keys"),
        sa.PrimaryKeyConstraint("agency_id", "id", name="pk_oauth_signing_keys"),
        sa.UniqueConstraint("agency_id", "kid", name="uq_oauth_signing_keys_agency_id_kid"),
    )
    with op.batch_alter_table("oauth_signing_keys", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_signing_keys_status", ["agency_id", "status"], unique=False)

    op.create_table(
        "oauth_authorization_codes",
        *_tenant_columns(),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("scope", sa.String(length=2000), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("code_challenge_method", sa.String(length=10), nullable=True),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        _client_fk("oauth_authorization_codes"),
        _user_fk("oauth_authorization_codes"),
        _agency_fk("oauth_authorization_codes"),
        sa.PrimaryKeyConstraint("agency_id", "id", name="pk_oauth_authorization_codes"),
    )
    with op.batch_alter_table("oauth_authorization_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_oauth_authorization_codes_hash", ["agency_id", "code_hash"], unique=True
        )
        batch_op.create_index(
            "ix_oauth_authorization_codes_nonce",
            ["agency_id", "client_id", "nonce"],
            unique=False,
        )

    op.create_table(
        "oauth_tokens",
        *_tenant_columns(),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("scope", sa.String(length=2000), nullable=False),
        sa.Column("code_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("auth_time", UTCDateTime(), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        _client_fk("oauth_tokens"),
        _user_fk("oauth_tokens"),
        _agency_fk("oauth_tokens"),
        sa.PrimaryKeyConstraint("agency_id", "id", name="pk_oauth_tokens"),
    )
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_tokens_hash", ["agency_id", "token_hash"], unique=True)
        batch_op.create_index("ix_oauth_tokens_family", ["agency_id", "family_id"], unique=False)
        batch_op.create_index("ix_oauth_tokens_code", ["agency_id", "code_id"], unique=False)
        batch_op.create_index("ix_oauth_tokens_session", ["agency_id", "session_id"], unique=False)

    op.create_table(
        "oauth_consents",
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        *_tenant_columns(),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("scopes", JSONType, nullable=False),
        _client_fk("oauth_consents"),
        _user_fk("oauth_consents"),
        _agency_fk("oauth_consents"),
        sa.PrimaryKeyConstraint("agency_id", "id", name="pk_oauth_consents"),
        sa.UniqueConstraint(
            "agency_id",
            "user_id",
            "client_id",
            name="uq_oauth_consents_agency_id_user_id_client_id",
        ),
    )

    # ---- PostgreSQL: the second wall -------------------------------------------------
    for table in (
        "oauth_clients",
        "oauth_signing_keys",
        "oauth_authorization_codes",
        "oauth_tokens",
        "oauth_consents",
    ):
        enable_tenant_rls(op, table)


def downgrade() -> None:
    op.drop_table("oauth_consents")
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_tokens_session")
        batch_op.drop_index("ix_oauth_tokens_code")
        batch_op.drop_index("ix_oauth_tokens_family")
        batch_op.drop_index("ix_oauth_tokens_hash")
    op.drop_table("oauth_tokens")
    with op.batch_alter_table("oauth_authorization_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_authorization_codes_nonce")
        batch_op.drop_index("ix_oauth_authorization_codes_hash")
    op.drop_table("oauth_authorization_codes")
    with op.batch_alter_table("oauth_signing_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_signing_keys_status")
    op.drop_table("oauth_signing_keys")
    op.drop_table("oauth_clients")
