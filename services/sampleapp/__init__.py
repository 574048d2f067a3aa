"""The sample solution: an OpenID Connect relying party agencies can sell through Switchboard
(`switchboard sample-app`). It uses nothing from Switchboard itself: only the agency's
issuer URL, a client id and secret, and the standard protocol."""

from services.sampleapp.app import create_sample_app

__all__ = ["create_sample_app"]
