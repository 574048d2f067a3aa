"""WooCommerce: REST API v3 of a store the client names, key pair auth, webhooks (issue 8)."""
