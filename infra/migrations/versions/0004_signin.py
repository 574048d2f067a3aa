"""sign-in hardening: throttling, password-reset links, e-mail sender, TOTP and recovery codes

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_throttles",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=False),
        sa.Column("lock_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_auth_throttles_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_auth_throttles")),
    )
    with op.batch_alter_table("auth_throttles") as batch_op:
        batch_op.create_index("ix_auth_throttles_key", ["agency_id", "key"], unique=True)
    enable_tenant_rls(op, "auth_throttles")

    op.create_table(
        "password_resets",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("requested_ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id", "user_id"],
            ["users.agency_id", "users.id"],
            name=op.f("fk_password_resets_agency_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_password_resets_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_password_resets")),
    )
    with op.batch_alter_table("password_resets") as batch_op:
        batch_op.create_index("ix_password_resets_hash", ["agency_id", "token_hash"], unique=True)
        batch_op.create_index(
            "ix_password_resets_user", ["agency_id", "user_id", "created_at"], unique=False
        )
    enable_tenant_rls(op, "password_resets")

    for table, extra in (
        (
            "totp_credentials",
            [
                sa.Column("secret_sealed", sa.String(length=500), nullable=False),
                sa.Column("created_at", UTCDateTime(), nullable=False),
                sa.Column("confirmed_at", UTCDateTime(), nullable=True),
                sa.Column("last_step", sa.Integer(), nullable=False),
            ],
        ),
        (
            "recovery_codes",
            [
                sa.Column("code_hash", sa.String(length=64), nullable=False),
                sa.Column("used_at", UTCDateTime(), nullable=True),
            ],
        ),
    ):
        op.create_table(
            table,
            sa.Column("agency_id", sa.Uuid(), nullable=False),
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("user_id", sa.Uuid(), nullable=False),
            *extra,
            sa.ForeignKeyConstraint(
                ["agency_id", "user_id"],
                ["users.agency_id", "users.id"],
                name=op.f(f"fk_{table}_agency_id_user_id_users"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["agency_id"],
                ["agencies.id"],
                name=op.f(f"fk_{table}_agency_id_agencies"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("agency_id", "id", name=op.f(f"pk_{table}")),
        )
        enable_tenant_rls(op, table)
    with op.batch_alter_table("totp_credentials") as batch_op:
        batch_op.create_index("ix_totp_credentials_user", ["agency_id", "user_id"], unique=True)
    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.create_index("ix_recovery_codes_user", ["agency_id", "user_id"], unique=False)
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.add_column(
            sa.Column("mfa_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("agencies") as batch_op:
        batch_op.add_column(sa.Column("mail_from_name", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("mail_from_address", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("mfa_required", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.drop_column("mfa_pending")
    op.drop_table("recovery_codes")
    op.drop_table("totp_credentials")
    with op.batch_alter_table("agencies") as batch_op:
        batch_op.drop_column("mfa_required")
        batch_op.drop_column("mail_from_address")
        batch_op.drop_column("mail_from_name")
    op.drop_table("password_resets")
    op.drop_table("auth_throttles")
