"""upstream sign-in: an agency's Google / Microsoft OAuth clients, linked external identities

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id"],
        ["agencies.id"],
        name=op.f(f"fk_{table}_agency_id_agencies"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "upstream_providers",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("client_secret_sealed", sa.String(length=1000), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _tenant_fk("upstream_providers"),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_upstream_providers")),
    )
    with op.batch_alter_table("upstream_providers") as batch_op:
        batch_op.create_index(
            "ix_upstream_providers_provider", ["agency_id", "provider"], unique=True
        )
    enable_tenant_rls(op, "upstream_providers")

    op.create_table(
        "external_identities",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id", "user_id"],
            ["users.agency_id", "users.id"],
            name=op.f("fk_external_identities_agency_id_user_id_users"),
            ondelete="CASCADE",
        ),
        _tenant_fk("external_identities"),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_external_identities")),
    )
    with op.batch_alter_table("external_identities") as batch_op:
        batch_op.create_index(
            "ix_external_identities_subject", ["agency_id", "provider", "subject"], unique=True
        )
        batch_op.create_index("ix_external_identities_user", ["agency_id", "user_id"], unique=False)
    enable_tenant_rls(op, "external_identities")


def downgrade() -> None:
    op.drop_table("external_identities")
    op.drop_table("upstream_providers")
