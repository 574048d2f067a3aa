"""Roles and the permissions they grant. Code checks permissions, never role names."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AGENCY_OWNER = "agency_owner"
    AGENCY_ADMIN = "agency_admin"
    AGENCY_STAFF = "agency_staff"
    CLIENT_OWNER = "client_owner"
    CLIENT_MEMBER = "client_member"

    @property
    def is_agency_scope(self) -> bool:
        return self in AGENCY_ROLES

    @property
    def rank(self) -> int:
        return _RANK[self]


AGENCY_ROLES = frozenset({Role.AGENCY_OWNER, Role.AGENCY_ADMIN, Role.AGENCY_STAFF})
CLIENT_ROLES = frozenset({Role.CLIENT_OWNER, Role.CLIENT_MEMBER})
_RANK = {
    Role.AGENCY_OWNER: 50,
    Role.AGENCY_ADMIN: 40,
    Role.AGENCY_STAFF: 30,
    Role.CLIENT_OWNER: 20,
    Role.CLIENT_MEMBER: 10,
}


class Permission(StrEnum):
    AGENCY_READ = "agency:read"
    AGENCY_MANAGE = "agency:manage"  # branding, settings
    CLIENTS_READ = "clients:read"
    CLIENTS_CREATE = "clients:create"
    CLIENTS_UPDATE = "clients:update"
    CLIENTS_LIFECYCLE = "clients:lifecycle"
    CLIENTS_DELETE = "clients:delete"
    CLIENTS_ASSIGN = "clients:assign"  # assign agency staff to clients
    USERS_READ = "users:read"
    USERS_INVITE = "users:invite"
    USERS_MANAGE = "users:manage"  # memberships, disabling users
    APIKEYS_MANAGE = "apikeys:manage"
    AUDIT_READ = "audit:read"
    PLATFORM_AGENCIES = "platform:agencies"  # the platform operator only
    # Register and manage relying parties (solution apps) of the agency's OpenID provider.
    # Granted to agency owners and admins (every agency permission: see _ADMIN).
    OAUTH_CLIENTS_MANAGE = "oauth_clients:manage"
    SCIM_MANAGE = "scim:manage"  # issue and revoke SCIM provisioning tokens
    # Enter a client's portal as one of its people (audited, time-limited). Agency owners and
    # admins: every client; staff: their assigned clients (their client scope). Never a client
    # role, and never held while impersonating (see services/identity/impersonation.py).
    CLIENTS_IMPERSONATE = "clients:impersonate"
    # Choose the solutions a client has (enable, disable): the agency's decision, soon a billed
    # entitlement. Agency roles only (staff: their assigned clients); never a client role.
    CLIENTS_SOLUTIONS = "clients:solutions"


_CLIENT_OWNER = frozenset(
    {
        Permission.AGENCY_READ,
        Permission.CLIENTS_READ,
        Permission.CLIENTS_UPDATE,
        Permission.USERS_READ,
        Permission.USERS_INVITE,
        Permission.USERS_MANAGE,
        Permission.AUDIT_READ,
    }
)
_CLIENT_MEMBER = frozenset({Permission.AGENCY_READ, Permission.CLIENTS_READ, Permission.USERS_READ})
_STAFF = frozenset(
    {
        Permission.AGENCY_READ,
        Permission.CLIENTS_READ,
        Permission.CLIENTS_CREATE,
        Permission.CLIENTS_UPDATE,
        Permission.CLIENTS_LIFECYCLE,
        Permission.USERS_READ,
        Permission.USERS_INVITE,
        Permission.CLIENTS_IMPERSONATE,
        Permission.CLIENTS_SOLUTIONS,
    }
)
_ADMIN = frozenset(p for p in Permission if p is not Permission.PLATFORM_AGENCIES)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENCY_OWNER: _ADMIN,
    Role.AGENCY_ADMIN: _ADMIN,
    Role.AGENCY_STAFF: _STAFF,
    Role.CLIENT_OWNER: _CLIENT_OWNER,
    Role.CLIENT_MEMBER: _CLIENT_MEMBER,
}

OPERATOR_PERMISSIONS = frozenset({Permission.PLATFORM_AGENCIES})


def permissions_for(roles: set[Role] | frozenset[Role]) -> frozenset[Permission]:
    out: set[Permission] = set()
    for role in roles:
        out |= ROLE_PERMISSIONS[role]
    return frozenset(out)


def can_grant(granter: Role, role: Role) -> bool:
    """A role may grant roles at or below its own rank; only an owner makes owners."""
    if role is Role.AGENCY_OWNER:
        return granter is Role.AGENCY_OWNER
    return granter.rank >= role.rank
