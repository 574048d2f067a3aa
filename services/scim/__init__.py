"""SCIM 2.0 (RFC 7643/7644): each agency's directory provisions its users and groups."""
