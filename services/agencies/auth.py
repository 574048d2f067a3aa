"""Declared access rules for agencies."""

from typing import Annotated

from fastapi import Depends

from services.identity.auth import require
from tenants.principal import Principal
from tenants.roles import Permission

Operator = Annotated[Principal, Depends(require(Permission.PLATFORM_AGENCIES))]
AgencyRead = Annotated[Principal, Depends(require(Permission.AGENCY_READ))]
AgencyManage = Annotated[Principal, Depends(require(Permission.AGENCY_MANAGE))]
