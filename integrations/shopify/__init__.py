"""Shopify: the Admin API (GraphQL), OAuth install, webhooks (issue 8)."""
