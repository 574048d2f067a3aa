"""`python -m services.portal.assets`: install the pinned npm packages and vendor them."""

from services.portal.assets import build

build()
