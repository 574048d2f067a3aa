"""Imports every table module so metadata is complete (Alembic, tests)."""

from services.identity import models as identity_models  # noqa: F401
from services.kit import jobs, mail  # noqa: F401
from services.kit.models import metadata
from tenants import models as tenant_models  # noqa: F401

__all__ = ["metadata"]
