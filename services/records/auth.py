"""Declared access rules for the client record."""

from services.identity.auth import Authorized
from tenants.roles import Permission

ClientsRead = Authorized(Permission.CLIENTS_READ)
ClientsCreate = Authorized(Permission.CLIENTS_CREATE)
ClientsUpdate = Authorized(Permission.CLIENTS_UPDATE)
ClientsLifecycle = Authorized(Permission.CLIENTS_LIFECYCLE)
ClientsDelete = Authorized(Permission.CLIENTS_DELETE)
