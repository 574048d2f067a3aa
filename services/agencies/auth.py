"""Declared access rules for agencies."""

from typing import Annotated

from fastapi import Depends

from services.identity.auth import AgencyManage, require
from tenants.principal import Principal
from tenants.roles import Permission

Operator = Annotated[Principal, Depends(require(Permission.PLATFORM_AGENCIES))]
AgencyRead = Annotated[Principal, Depends(require(Permission.AGENCY_READ))]
# Declared in identity's auth (its sign-in provider routes need it too): one alias.
__all__ = ["AgencyManage", "AgencyRead", "Operator"]
