"""scim

Revision ID: 0003
Revises: 0002
Creates the SCIM tables: per-agency provisioning tokens (SHA-256 only), the SCIM side of a
user (externalId, name parts, e-mail addresses, deletion by the directory) and the groups a
directory sees (built-in role and client-team groups, and directory groups with their
members). Every table is a tenant table with row-level security on PostgreSQL.

Create Date: 2026-11-23 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scim_tokens",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=24), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_scim_tokens_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_scim_tokens")),
    )
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_scim_tokens_hash", ["agency_id", "token_hash"], unique=True)

    op.create_table(
        "scim_user_profiles",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id", "id"],
            ["users.agency_id", "users.id"],
            name=op.f("fk_scim_user_profiles_agency_id_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_scim_user_profiles_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_scim_user_profiles")),
    )
    with op.batch_alter_table("scim_user_profiles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scim_user_profiles_external", ["agency_id", "external_id"], unique=False
        )

    op.create_table(
        "scim_user_emails",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id", "user_id"],
            ["users.agency_id", "users.id"],
            name=op.f("fk_scim_user_emails_agency_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_scim_user_emails_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_scim_user_emails")),
    )
    with op.batch_alter_table("scim_user_emails", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scim_user_emails_user", ["agency_id", "user_id", "position"], unique=False
        )
        batch_op.create_index("ix_scim_user_emails_value", ["agency_id", "value"], unique=False)

    op.create_table(
        "scim_groups",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id", "client_id"],
            ["clients.agency_id", "clients.id"],
            name=op.f("fk_scim_groups_agency_id_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_scim_groups_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_scim_groups")),
        sa.UniqueConstraint("agency_id", "key", name=op.f("uq_scim_groups_agency_id_key")),
    )
    with op.batch_alter_table("scim_groups", schema=None) as batch_op:
        batch_op.create_index("ix_scim_groups_client", ["agency_id", "client_id"], unique=False)

    op.create_table(
        "scim_group_members",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id", "group_id"],
            ["scim_groups.agency_id", "scim_groups.id"],
            name=op.f("fk_scim_group_members_agency_id_group_id_scim_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id", "user_id"],
            ["users.agency_id", "users.id"],
            name=op.f("fk_scim_group_members_agency_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_scim_group_members_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_scim_group_members")),
        sa.UniqueConstraint(
            "agency_id",
            "group_id",
            "user_id",
            name=op.f("uq_scim_group_members_agency_id_group_id_user_id"),
        ),
    )
    with op.batch_alter_table("scim_group_members", schema=None) as batch_op:
        batch_op.create_index("ix_scim_group_members_user", ["agency_id", "user_id"], unique=False)

    # ---- PostgreSQL: the second wall -------------------------------------------------
    enable_tenant_rls(op, "scim_tokens")
    enable_tenant_rls(op, "scim_user_profiles")
    enable_tenant_rls(op, "scim_user_emails")
    enable_tenant_rls(op, "scim_groups", client_column="client_id")
    enable_tenant_rls(op, "scim_group_members")


def downgrade() -> None:
    with op.batch_alter_table("scim_group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_group_members_user")
    op.drop_table("scim_group_members")
    with op.batch_alter_table("scim_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_groups_client")
    op.drop_table("scim_groups")
    with op.batch_alter_table("scim_user_emails", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_user_emails_value")
        batch_op.drop_index("ix_scim_user_emails_user")
    op.drop_table("scim_user_emails")
    with op.batch_alter_table("scim_user_profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_user_profiles_external")
    op.drop_table("scim_user_profiles")
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_tokens_hash")
    op.drop_table("scim_tokens")
