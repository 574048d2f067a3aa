"""The per-agency OpenID Connect provider: relying parties, signing keys, codes, tokens,
consents, and the Authlib wiring that serves them at `{BASE_URL}/a/{slug}`."""
