"""Imports every table module so metadata is complete (Alembic, tests, the RLS check).

Every `services/<domain>/models.py` is found automatically; a new domain needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil

import services
from services.kit import jobs, mail  # noqa: F401  (tables defined in the kit)
from services.kit.models import metadata
from tenants import models as tenant_models  # noqa: F401

for _info in pkgutil.iter_modules(services.__path__):
    if _info.ispkg:
        try:
            importlib.import_module(f"services.{_info.name}.models")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{_info.name}.models":
                raise

__all__ = ["metadata"]
