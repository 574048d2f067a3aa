"""A local WooCommerce store (REST API v3) for the demo and the tests: see `app.py`."""
