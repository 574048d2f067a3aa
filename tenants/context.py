"""The tenant a unit of work runs in, carried on the session (never read from a request)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TenantContext:
    agency_id: uuid.UUID | None
    # None: every client of the agency. A set: only these clients (client users, staff,
    # client-scoped API keys).
    client_ids: frozenset[uuid.UUID] | None = None
    # The signed-in person, who always sees their own user row.
    user_id: uuid.UUID | None = None
    # Set only by `unscoped()`: the reason, written to the audit trail.
    unscoped_reason: str | None = None

    @property
    def is_unscoped(self) -> bool:
        return self.unscoped_reason is not None

    @classmethod
    def for_agency(
        cls, agency_id: uuid.UUID, client_ids: frozenset[uuid.UUID] | None = None
    ) -> TenantContext:
        return cls(agency_id=agency_id, client_ids=client_ids)

    def allows_client(self, client_id: uuid.UUID) -> bool:
        return self.is_unscoped or self.client_ids is None or client_id in self.client_ids
