"""OpenID Connect Back-Channel Logout: relying parties' logout URIs, the sessions they signed in to

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.types import UTCDateTime
from tenants.rls import enable_tenant_rls

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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
            sa.Column("backchannel_logout_uri", sa.String(length=2000), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "backchannel_logout_session_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )

    op.create_table(
        "oauth_session_clients",
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _fk("oauth_session_clients", "session_id", "user_sessions"),
        _fk("oauth_session_clients", "client_id", "oauth_clients"),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_oauth_session_clients_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "id", name=op.f("pk_oauth_session_clients")),
        sa.UniqueConstraint(
            "agency_id",
            "session_id",
            "client_id",
            name=op.f("uq_oauth_session_clients_agency_id_session_id_client_id"),
        ),
    )
    with op.batch_alter_table("oauth_session_clients") as batch_op:
        batch_op.create_index(
            "ix_oauth_session_clients_client", ["agency_id", "client_id"], unique=False
        )
    enable_tenant_rls(op, "oauth_session_clients")


def downgrade() -> None:
    op.drop_table("oauth_session_clients")
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
