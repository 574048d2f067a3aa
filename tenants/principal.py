"""Who is calling: the one object every authorization decision is made from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from tenants.context import TenantContext
from tenants.roles import OPERATOR_PERMISSIONS, ROLE_PERMISSIONS, Permission, Role

PrincipalKind = Literal["user", "api_key", "operator", "system"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    agency_id: uuid.UUID | None
    role: Role | None
    permissions: frozenset[Permission]
    # None: agency-wide. Otherwise the only clients this principal may see.
    client_ids: frozenset[uuid.UUID] | None = None
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    label: str = ""
    session_id: uuid.UUID | None = None
    agency_slug: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def is_client_scoped(self) -> bool:
        return self.client_ids is not None

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.user_id or self.api_key_id

    def tenant(self) -> TenantContext:
        if self.agency_id is None:
            raise ValueError("principal has no agency")
        return TenantContext(
            agency_id=self.agency_id, client_ids=self.client_ids, user_id=self.user_id
        )

    @classmethod
    def operator(cls) -> Principal:
        return cls(
            kind="operator",
            agency_id=None,
            role=None,
            permissions=OPERATOR_PERMISSIONS,
            label="platform operator",
        )

    @classmethod
    def acting_in(cls, agency_id: uuid.UUID, agency_slug: str, label: str) -> Principal:
        """The operator (CLI, onboarding, demo seed) acting inside one agency as its owner."""
        return cls(
            kind="operator",
            agency_id=agency_id,
            agency_slug=agency_slug,
            role=Role.AGENCY_OWNER,
            permissions=ROLE_PERMISSIONS[Role.AGENCY_OWNER],
            label=label,
        )

    @classmethod
    def system(cls, agency_id: uuid.UUID, label: str = "system") -> Principal:
        return cls(
            kind="system",
            agency_id=agency_id,
            role=None,
            permissions=frozenset(),
            label=label,
        )
