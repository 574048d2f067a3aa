"""The tenancy kernel: Agency, Client, User, Membership, roles → permissions, Principal,
tenant context, fail-closed query scoping, RLS policies and the audit log.

Importing the package installs the scoping hooks on every application session.
"""

from tenants import scoping as _scoping  # noqa: F401  (registers the session hooks)
