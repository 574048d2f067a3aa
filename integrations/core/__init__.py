"""The connector SDK: what every vendor package shares (credential vault, ...)."""
