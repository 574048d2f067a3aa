"""solutions enabled per client, passkeys, audited impersonation

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import JSONType, UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id"],
        ["agencies.id"],
        name=op.f(f"fk_{table}_agency_id_agencies"),
        ondelete="CASCADE",
    )


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["agency_id", column],
        [f"{target}.agency_id", f"{target}.id"],
        name=op.f(f"fk_{table}_agency_id_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.add_column(
            sa.Column("solution", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("description", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("initiate_login_uri", sa.String(length=2000), nullable=True))

    op.create_table(
        "client_solutions",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("oauth_client_id", sa.Uuid(), nullable=False),
        sa.Column("enabled_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _fk("client_solutions", "client_id", "clients"),
        _fk("client_solutions", "oauth_client_id", "oauth_clients"),
        _tenant_fk("client_solutions"),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_client_solutions")),
        sa.UniqueConstraint(
            "agency_id",
            "client_id",
            "oauth_client_id",
            name=op.f("uq_client_solutions_agency_id_client_id_oauth_client_id"),
        ),
    )
    with op.batch_alter_table("client_solutions") as batch_op:
        batch_op.create_index(
            "ix_client_solutions_app", ["agency_id", "oauth_client_id"], unique=False
        )
    enable_tenant_rls(op, "client_solutions", client_column="client_id")

    op.create_table(
        "passkeys",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.String(length=4000), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("transports", JSONType, nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=True),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        _fk("passkeys", "user_id", "users"),
        _tenant_fk("passkeys"),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_passkeys")),
    )
    with op.batch_alter_table("passkeys") as batch_op:
        batch_op.create_index("ix_passkeys_credential", ["agency_id", "credential_id"], unique=True)
        batch_op.create_index("ix_passkeys_user", ["agency_id", "user_id"], unique=False)
    enable_tenant_rls(op, "passkeys")

    op.create_table(
        "impersonations",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        _fk("impersonations", "client_id", "clients"),
        _fk("impersonations", "actor_user_id", "users"),
        _fk("impersonations", "user_id", "users"),
        _tenant_fk("impersonations"),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_impersonations")),
    )
    with op.batch_alter_table("impersonations") as batch_op:
        batch_op.create_index(
            "ix_impersonations_client", ["agency_id", "client_id", "started_at"], unique=False
        )
    enable_tenant_rls(op, "impersonations", client_column="client_id")

    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.add_column(sa.Column("impersonation_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.drop_column("impersonation_id")
    op.drop_table("impersonations")
    op.drop_table("passkeys")
    op.drop_table("client_solutions")
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.drop_column("initiate_login_uri")
        batch_op.drop_column("description")
        batch_op.drop_column("solution")
