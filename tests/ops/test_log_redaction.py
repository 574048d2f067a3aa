"""Log lines never carry a secret under a key that names one, and still carry counts."""

from __future__ import annotations

from services.kit.logging import _redact


def test_secret_values_are_redacted_and_counts_are_kept():
    event = {
        "event": "retention.purged",
        "password": "hunter2",
        "refresh_token": "rt_abc",
        "Authorization": "Bearer xyz",
        "session_cookie": b"raw",
        "api_key_headers": {"x": "y"},
        "client_secret": ["a", "b"],
        "tokens_revoked": 3,
        "password_resets": 12,
        "token_ratio": 0.5,
        "secret_rotated": True,
        "token": None,
        "agency_id": "agy_1",
    }
    out = _redact(None, "info", dict(event))
    for key in ("password", "refresh_token", "Authorization", "session_cookie"):
        assert out[key] == "[redacted]", key
    assert out["api_key_headers"] == "[redacted]"
    assert out["client_secret"] == "[redacted]"
    assert out["tokens_revoked"] == 3
    assert out["password_resets"] == 12
    assert out["token_ratio"] == 0.5
    assert out["secret_rotated"] is True
    assert out["token"] is None
    assert out["agency_id"] == "agy_1"
    assert out["event"] == "retention.purged"
