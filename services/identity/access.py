"""Who may act on whom: the one rule for every write that touches a person or their roles.

Every door calls it (the API's users, memberships and invitations, the portal's team forms,
SCIM's Users and built-in Groups): a principal P may change anything of a person U (a field,
the status, a role, an invitation that adds a role) only if

* **owner protection** — U is not an agency owner, or P acts as an agency owner (an owner
  in person, or the platform operator acting in the agency). An admin, and so the directory,
  never changes anything of an owner;
* **rank** — P's rank is at least the highest rank U holds anywhere in the agency;
* **scope** — a client-scoped P (client people, assigned staff, client-scoped keys) acts only
  on people whose every role lies on P's own clients.

U's roles are read agency-wide, outside the caller's client scope (a client-scoped session
sees only the memberships on its clients), on the kernel's read path (`tenants.reads`) in
the caller's own agency: the caller's session is never widened.

Granting a role is the other half (`check_grant`): a role may grant roles at or below its
own rank, and only an owner makes owners. The SCIM directory acts with an admin's rank (a
token is issued by an owner or an admin).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from services.kit.errors import Forbidden
from tenants.context import TenantContext
from tenants.models import Membership, User
from tenants.principal import Principal
from tenants.reads import TenantQuery, tenant_reads
from tenants.roles import AGENCY_ROLES, Role, can_grant

# `Principal.extra["credential"]` of a SCIM token (services/scim).
DIRECTORY_CREDENTIAL = "scim_token"

_memberships = Membership.__table__
_users = User.__table__

ROLES_OF_USER = TenantQuery(
    "every role of one person in the agency",
    select(_memberships.c.role, _memberships.c.client_id).where(
        _memberships.c.agency_id == bindparam("agency_id"),
        _memberships.c.user_id == bindparam("user_id"),
    ),
)

USER_BY_EMAIL = TenantQuery(
    "a person of the agency by e-mail",
    select(_users.c.id).where(
        _users.c.agency_id == bindparam("agency_id"), _users.c.email == bindparam("email")
    ),
)


@dataclass(frozen=True, slots=True)
class Standing:
    """Every role a person holds in the agency: (role, client id or None for agency scope)."""

    user_id: uuid.UUID
    roles: frozenset[tuple[Role, uuid.UUID | None]]

    @property
    def is_owner(self) -> bool:
        return (Role.AGENCY_OWNER, None) in self.roles

    @property
    def top(self) -> Role | None:
        return max((r for r, _ in self.roles), key=lambda r: r.rank, default=None)

    def within(self, client_ids: frozenset[uuid.UUID]) -> bool:
        """Every role of the person lies on one of these clients."""
        return all(c is not None and c in client_ids for _, c in self.roles)


def is_directory(principal: Principal) -> bool:
    return principal.kind == "system" and principal.extra.get("credential") == DIRECTORY_CREDENTIAL


def acting_role(principal: Principal) -> Role | None:
    """The role P's rank is judged by: its own; the operator acts as an owner (CLI,
    onboarding); the directory as an admin; anything else (system jobs) has none."""
    if principal.is_operator:
        return Role.AGENCY_OWNER
    if is_directory(principal):
        return Role.AGENCY_ADMIN
    return principal.role


async def standing_of(principal: Principal, user_id: uuid.UUID) -> Standing:
    """U's roles in P's agency, whatever P's client scope (read-only, agency-wide)."""
    assert principal.agency_id is not None
    async with tenant_reads(TenantContext.for_agency(principal.agency_id)) as reads:
        rows = await reads.all(ROLES_OF_USER, user_id=user_id)
    return Standing(user_id, frozenset((Role(r["role"]), r["client_id"]) for r in rows))


async def user_id_by_email(principal: Principal, email: str) -> uuid.UUID | None:
    """The person with this (normalized) e-mail in P's agency, whatever P's client scope:
    an invitation to them is a change of them."""
    assert principal.agency_id is not None
    async with tenant_reads(TenantContext.for_agency(principal.agency_id)) as reads:
        row = await reads.one_or_none(USER_BY_EMAIL, email=email)
    return row["id"] if row is not None else None


def decide(principal: Principal, target: Standing) -> None:
    """Raise Forbidden unless P may act on the person whose standing this is."""
    role = acting_role(principal)
    if role is None:
        raise Forbidden("this caller may not change people")
    if target.is_owner and role is not Role.AGENCY_OWNER:
        raise Forbidden("agency owners can be changed by an agency owner only")
    top = target.top
    if top is not None and top.rank > role.rank:
        raise Forbidden(f"your role may not change a person who is {top.value}")
    if principal.client_ids is not None and not target.within(principal.client_ids):
        raise Forbidden("this person also works outside your clients; the agency manages them")


async def check_may_act_on(principal: Principal, user_id: uuid.UUID) -> Standing:
    """The rule, from U's id: reads U's agency-wide roles and decides (Forbidden if not)."""
    standing = await standing_of(principal, user_id)
    decide(principal, standing)
    return standing


def check_grant(principal: Principal, role: Role) -> None:
    """P may grant (or take away) `role`: at or below its own rank, owners by owners only;
    a client-scoped P only roles on a client (an agency role reaches beyond its clients)."""
    if principal.is_client_scoped and role in AGENCY_ROLES:
        raise Forbidden("client-scoped callers may grant roles on their clients only")
    acting = acting_role(principal)
    if acting is None or not can_grant(acting, role):
        raise Forbidden(f"your role may not grant {role.value}")


def grantable_roles(principal: Principal) -> list[Role]:
    """Every role P may grant (`check_grant`), highest first: what a form offers."""
    allowed = []
    for role in sorted(Role, key=lambda r: -r.rank):
        try:
            check_grant(principal, role)
        except Forbidden:
            continue
        allowed.append(role)
    return allowed
