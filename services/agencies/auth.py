"""Declared access rules for agencies."""

from services.identity.auth import Authorized
from tenants.roles import Permission

Operator = Authorized(Permission.PLATFORM_AGENCIES)
AgencyRead = Authorized(Permission.AGENCY_READ)
AgencyManage = Authorized(Permission.AGENCY_MANAGE)
