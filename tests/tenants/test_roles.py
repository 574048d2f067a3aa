"""Roles → permissions and who may grant what."""

from tenants.roles import AGENCY_ROLES, ROLE_PERMISSIONS, Permission, Role, can_grant


def test_every_role_has_permissions_and_only_operator_manages_agencies():
    for role in Role:
        assert ROLE_PERMISSIONS[role]
        assert Permission.PLATFORM_AGENCIES not in ROLE_PERMISSIONS[role]


def test_client_roles_cannot_manage_agency_things():
    for role in (Role.CLIENT_OWNER, Role.CLIENT_MEMBER):
        perms = ROLE_PERMISSIONS[role]
        assert Permission.APIKEYS_MANAGE not in perms
        assert Permission.CLIENTS_CREATE not in perms
        assert Permission.AGENCY_MANAGE not in perms


def test_grants():
    assert can_grant(Role.AGENCY_OWNER, Role.AGENCY_OWNER)
    assert not can_grant(Role.AGENCY_ADMIN, Role.AGENCY_OWNER)
    assert can_grant(Role.AGENCY_ADMIN, Role.AGENCY_STAFF)
    assert not can_grant(Role.AGENCY_STAFF, Role.AGENCY_ADMIN)
    assert can_grant(Role.CLIENT_OWNER, Role.CLIENT_MEMBER)
    assert all(not can_grant(Role.CLIENT_OWNER, r) for r in AGENCY_ROLES)
