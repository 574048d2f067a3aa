"""Base models. Every tenant-owned table derives from `TenantModel` (agency_id in its key)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import MetaData, Table
from sqlmodel import Field, SQLModel

from services.kit.types import UTCDateTime, utcnow

# Stable constraint names, so Alembic migrations are deterministic on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class TenantModel(SQLModel):
    """A row owned by one agency. Primary key (agency_id, id): distributable by agency_id."""

    agency_id: uuid.UUID = Field(primary_key=True, foreign_key="agencies.id", ondelete="CASCADE")
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)

    # Column holding the client a row belongs to, for client-scoped principals. None: the row
    # is agency-level and client-scoped principals may not see it unless a model says so.
    __client_column__: ClassVar[str | None] = None
    # Columns never written to the audit trail (secrets, hashes).
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset()
    # Columns whose changes alone are not worth an audit entry (last-used timestamps).
    __audit_ignore__: ClassVar[frozenset[str]] = frozenset()
    # False: writes to this table are not audited row by row (the audit log itself, sessions).
    __audited__: ClassVar[bool] = True
    # Public id prefix, for audit targets.
    __public_prefix__: ClassVar[str] = ""

    if TYPE_CHECKING:  # set by SQLAlchemy's declarative mapping; SQLModel does not declare it
        __table__: ClassVar[Table]


class Timestamped(SQLModel):
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
