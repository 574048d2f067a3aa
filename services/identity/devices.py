"""Device tokens (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

A browser that completed a sign-in gets a device token: {user, random device id, issued at},
sealed (AES-256-GCM, services.kit.crypto) to the agency, so it cannot be forged, read or
moved to another agency. A password sign-in that presents a valid token of the same person
is counted and locked under `dev:<device id>` only (`throttle.sign_in_keys`): an attacker's
failures elsewhere, which lock the account for unknown browsers, do not lock that person's
own browser out. Each successful sign-in issues a fresh token (a new device id).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from services.kit.crypto import new_token, open_compact, seal_compact
from services.kit.types import utcnow

DEVICE_TTL = timedelta(days=180)
_DEVICE_PURPOSE = "device-token"


def issue_device_token(agency_id: uuid.UUID, user_id: uuid.UUID) -> str:
    payload = {"u": user_id.hex, "d": new_token(16), "t": int(utcnow().timestamp())}
    return seal_compact(
        json.dumps(payload).encode(), purpose=_DEVICE_PURPOSE, context=str(agency_id)
    )


def trusted_device(agency_id: uuid.UUID, user_id: uuid.UUID, token: str) -> str | None:
    """The device id of a valid, unexpired token issued to `user_id` in this agency."""
    raw = open_compact(token, purpose=_DEVICE_PURPOSE, context=str(agency_id), max_length=400)
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        issued = datetime.fromtimestamp(int(payload["t"]), tz=utcnow().tzinfo)
        owner, device_id = str(payload["u"]), str(payload["d"])
    except Exception:  # sealed by us but not a device token's shape
        return None
    if owner != user_id.hex or utcnow() - issued > DEVICE_TTL:
        return None
    return device_id
