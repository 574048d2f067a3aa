"""Browser security for the portal: session and CSRF cookies, safe redirects, headers.

CSRF: every browser gets a random `sb_csrf` cookie (HttpOnly, SameSite=Lax, per agency path).
Each form carries `csrf_token = HMAC(secret_key, slug | csrf cookie | session cookie)`. A POST
is accepted only when the field matches what the cookies it arrived with give (constant-time
compare). Another site can neither read the cookie nor compute the HMAC, and a cookie planted
from elsewhere does not help either: the token is bound to the victim's own session cookie.
A POST whose `Origin` names another host is refused as well.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.kit.crypto import constant_time_equal, hmac_hex, new_token
from services.settings import get_settings

SESSION_COOKIE = "sb_session"
CSRF_COOKIE = "sb_csrf"
FLASH_COOKIE = "sb_flash"
CSRF_FIELD = "csrf_token"

_TOKEN_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{20,64}$")


def cookie_path(slug: str) -> str:
    return f"/a/{slug}/"


def _cookie(request: Request, name: str) -> str:
    value = request.cookies.get(name, "")
    return value if _TOKEN_RE.match(value) else ""


def session_cookie(request: Request) -> str:
    """The browser's session token: the one this response hands over when the request
    rotated it (`adopt_session`), else the cookie the browser sent."""
    rotated: str | None = getattr(request.state, "rotated_session", None)
    return rotated or _cookie(request, SESSION_COOKIE)


def adopt_session(request: Request, response: Response, slug: str, token: str) -> None:
    """The request's session was replaced (a privilege change): the response carries the new
    cookie, and what the page renders from now on (its CSRF tokens) belongs to it."""
    request.state.rotated_session = token
    set_session_cookie(response, slug, token)


# ---- CSRF ---------------------------------------------------------------------------------


def _csrf_secret(request: Request) -> str:
    """The browser's CSRF cookie value; a new one (set on the response) if it has none."""
    existing = _cookie(request, CSRF_COOKIE)
    if existing:
        return existing
    fresh: str | None = getattr(request.state, "csrf_new", None)
    if fresh is None:
        fresh = new_token(24)
        request.state.csrf_new = fresh
    return fresh


def _expected(slug: str, csrf_secret: str, session_token: str) -> str:
    return hmac_hex(get_settings().secret_key, f"csrf|{slug}|{csrf_secret}|{session_token}")


def csrf_token(request: Request, slug: str) -> str:
    return _expected(slug, _csrf_secret(request), session_cookie(request))


def csrf_valid(request: Request, slug: str, submitted: object) -> bool:
    cookie = _cookie(request, CSRF_COOKIE)
    if not cookie or not isinstance(submitted, str) or not submitted:
        return False
    expected = _expected(slug, cookie, session_cookie(request))
    return constant_time_equal(expected, submitted[:128])


def origin_allowed(request: Request) -> bool:
    """A cross-site POST carries the other site's Origin; ours, or none (old browsers), pass."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = urlsplit(origin).netloc.lower()
    allowed = {request.headers.get("host", "").lower(), urlsplit(get_settings().base_url).netloc}
    return host in allowed


def remember_csrf_cookie(request: Request, response: Response, slug: str) -> None:
    fresh = getattr(request.state, "csrf_new", None)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            path=cookie_path(slug),
            httponly=True,
            samesite="lax",
            secure=get_settings().secure_cookies,
        )


# ---- session cookie -------------------------------------------------------------------------


def set_session_cookie(response: Response, slug: str, token: str) -> None:
    """A browser-session cookie (no Max-Age): the server-side session expires on its own."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )


def clear_session_cookie(response: Response, slug: str) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )


# ---- device cookie (identity.service device tokens: a browser that signed in before) -------

DEVICE_COOKIE = "sb_device"
_DEVICE_RE = re.compile(r"^v1:[A-Za-z0-9_-]{40,380}$")


def device_cookie(request: Request) -> str:
    value = request.cookies.get(DEVICE_COOKIE, "")
    return value if _DEVICE_RE.match(value) else ""


def set_device_cookie(response: Response, slug: str, token: str) -> None:
    """Long-lived (it outlives sessions and sign-outs: it only says "this browser signed in
    as this person before"), HttpOnly, SameSite=Lax, Secure on https."""
    from services.identity.service import DEVICE_TTL

    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=int(DEVICE_TTL.total_seconds()),
        path=cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )


# ---- flash messages (a fixed vocabulary: nothing a cookie could inject is ever shown) ------

FLASHES: dict[str, tuple[str, str]] = {
    "client_created": ("success", "The client record was created."),
    "client_updated": ("success", "Your changes were saved."),
    "lifecycle_changed": ("success", "The lifecycle stage was updated."),
    "invited": ("success", "The invitation is on its way."),
    "invitation_revoked": ("success", "The invitation was revoked."),
    "branding_saved": ("success", "Branding saved. Your portal uses it from now on."),
    "impersonation_ended": ("info", "You stopped viewing as a client user and are yourself again."),
    "impersonation_expired": (
        "info",
        "Your view as a client user reached its time limit and ended. You are yourself again.",
    ),
    "impersonation_over": ("info", "Your view as a client user has ended. You are yourself again."),
    "impersonation_signin": (
        "info",
        "Your view as a client user has ended. Sign in again to continue as yourself.",
    ),
    "signed_out": ("info", "You are signed out."),
    "signed_out_everywhere": ("info", "You are signed out on every device."),
    "welcome": ("success", "Welcome! Your account is ready."),
    "password_reset": ("success", "Your new password is saved. Other devices were signed out."),
    "passkey_added": ("success", "Your passkey is added. Use it the next time you sign in."),
    "passkey_renamed": ("success", "The passkey was renamed."),
    "passkey_removed": ("success", "The passkey was removed."),
    "sign_in_provider_saved": ("success", "Saved. The sign-in page shows the change at once."),
    "sign_in_provider_removed": ("success", "That sign-in option was removed."),
    "app_saved": ("success", "The app's settings were saved."),
    "app_clients_saved": ("success", "The clients that have this solution were updated."),
    "app_deleted": ("success", "The app was deleted. Its tokens no longer work."),
}


def set_flash(response: Response, slug: str, key: str) -> None:
    assert key in FLASHES
    response.set_cookie(
        FLASH_COOKIE,
        key,
        path=cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
        max_age=60,
    )


def see_other(url: str, slug: str | None = None, flash: str | None = None) -> RedirectResponse:
    """A 303 to `url`, carrying one of the FLASHES when given (every portal redirect)."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        assert slug is not None
        set_flash(response, slug, flash)
    return response


def take_flash(request: Request) -> tuple[str, str] | None:
    return FLASHES.get(request.cookies.get(FLASH_COOKIE, ""))


def clear_flash(request: Request, response: Response, slug: str) -> None:
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(slug))


# ---- redirects --------------------------------------------------------------------------------


def safe_next(value: object, slug: str) -> str | None:
    """A post-sign-in destination: only a relative path inside this agency's portal."""
    if not isinstance(value, str) or not value or len(value) > 2000:
        return None
    if any(c in value for c in "\\\r\n\t") or any(ord(c) < 32 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(cookie_path(slug)):
        return None
    if value.startswith("//") or "/../" in parts.path or parts.path.endswith("/.."):
        return None
    return value


# ---- headers ----------------------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def security_headers(response: Response, nonce: str | None = None) -> None:
    style = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; "
        f"style-src {style}; img-src 'self' https: http: data:; font-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Invitation tokens live in URLs: never leak them to a logo host through Referer.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
