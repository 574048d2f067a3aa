"""Declared access rules for the client record."""

from typing import Annotated

from fastapi import Depends

from services.identity.auth import require
from tenants.principal import Principal
from tenants.roles import Permission

ClientsRead = Annotated[Principal, Depends(require(Permission.CLIENTS_READ))]
ClientsCreate = Annotated[Principal, Depends(require(Permission.CLIENTS_CREATE))]
ClientsUpdate = Annotated[Principal, Depends(require(Permission.CLIENTS_UPDATE))]
ClientsLifecycle = Annotated[Principal, Depends(require(Permission.CLIENTS_LIFECYCLE))]
ClientsDelete = Annotated[Principal, Depends(require(Permission.CLIENTS_DELETE))]
