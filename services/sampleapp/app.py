"""The sample solution: a small web app that signs people in with their agency.

Routes:

* `GET /` — who is signed in (from the ID token's claims), or a "Sign in with …" button;
* `GET|POST /login` — starts authorization code + PKCE (S256) with `state` and `nonce`; also
  the *initiate login URI* of OpenID Connect third-party-initiated login
  (`?iss=…&login_hint=…&target_link_uri=…`): the agency's portal sends people here;
* `GET /callback` — checks `state`, exchanges the code, validates the ID token, opens the
  session;
* `GET /logout` (a confirmation form), `POST /logout` — ends the local session and sends the
  browser to the agency's `end_session_endpoint` with `id_token_hint`;
* `POST /backchannel-logout` — the back-channel logout URI (OpenID Connect Back-Channel
  Logout 1.0): the agency posts a logout token here when the person's portal session ends;
  a valid one ends the matching sessions of this app (200), anything else is a 400.

The session is a signed (HMAC-SHA256), HttpOnly, SameSite=Lax cookie holding the ID token;
it ends when the ID token expires. The sign-in in flight (state, nonce, PKCE verifier,
target) waits in a second signed cookie for ten minutes.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.sampleapp.backchannel import LogoutRegistry
from services.sampleapp.cookies import MAX_COOKIE_CHARS, Signer
from services.sampleapp.oidc import RelyingParty, Settings, SignInError, unverified_part

log = logging.getLogger("switchboard.sampleapp")

PENDING_MAX_AGE = 600
PENDING_MAX_ENTRIES = 3  # sign-ins started in several tabs at once
SESSION_PURPOSE = "session"
PENDING_PURPOSE = "pending-sign-in"
# Pages the browser must not land on after signing in (loops, or a needless form).
_NOT_A_TARGET = ("/login", "/callback", "/logout")

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def create_sample_app(
    issuer: str,
    client_id: str,
    client_secret: str | None,
    base_url: str,
    *,
    name: str = "Sample solution",
    http_transport: httpx.AsyncBaseTransport | None = None,
    secret_key: str | None = None,
) -> Starlette:
    """The sample solution as an ASGI app.

    `issuer` is the agency's issuer (`{BASE_URL}/a/{slug}`); `client_id`/`client_secret`
    come from registering the app (`POST /api/v1/oauth-clients`; a public client has no
    secret and relies on PKCE alone); `base_url` is where this app is reachable: its
    redirect URI is `{base_url}/callback`, its initiate login URI `{base_url}/login`, its
    post-logout redirect URI `{base_url}/` and its back-channel logout URI
    `{base_url}/backchannel-logout`. `http_transport` carries every back-channel call
    (discovery, JWKS, token endpoint). `secret_key` signs the cookies; without one, a random
    key is made and sessions end when the process does.
    """
    issuer = issuer.strip().rstrip("/")
    base_url = base_url.strip().rstrip("/")
    for label, url in (("issuer", issuer), ("base_url", base_url)):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{label} must be an absolute http(s) URL, not {url!r}")
    ui = SampleApp(
        name=name,
        base_url=base_url,
        rp=RelyingParty(
            Settings(
                issuer=issuer,
                client_id=client_id,
                client_secret=client_secret or None,
                redirect_uri=f"{base_url}/callback",
                post_logout_redirect_uri=f"{base_url}/",
            ),
            http_transport,
        ),
        signer=Signer(secret_key.encode() if secret_key else secrets.token_bytes(32)),
    )
    app = Starlette(
        routes=[
            Route("/", ui.home, methods=["GET"], name="home"),
            Route("/login", ui.login, methods=["GET", "POST"], name="login"),
            Route("/callback", ui.callback, methods=["GET"], name="callback"),
            Route("/logout", ui.logout_page, methods=["GET"], name="logout_page"),
            Route("/logout", ui.logout, methods=["POST"], name="logout"),
            Route(
                "/backchannel-logout",
                ui.backchannel_logout,
                methods=["POST"],
                name="backchannel_logout",
            ),
        ]
    )
    app.state.sample = ui
    return app


class SampleApp:
    def __init__(self, *, name: str, base_url: str, rp: RelyingParty, signer: Signer) -> None:
        self.name = name
        self.base_url = base_url
        self.rp = rp
        self.signer = signer
        self.logouts = LogoutRegistry()
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.secure = parts.scheme == "https"
        issuer = urlsplit(rp.settings.issuer)
        self.issuer_origin = f"{issuer.scheme}://{issuer.netloc}"
        # Several sample apps on one host (ports do not separate cookies): one name each.
        suffix = sha256(rp.settings.client_id.encode()).hexdigest()[:10]
        self.session_cookie = f"sample_session_{suffix}"
        self.pending_cookie = f"sample_signin_{suffix}"
        # The agency's name, learned from the first ID token; until then, from its URL name
        # (discovery does not tell it).
        slug = issuer.path.strip("/").split("/")[-1]
        self.agency_name = slug.replace("-", " ").title() if slug else "your agency"

    # ---- pages -----------------------------------------------------------------------------

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = _templates.get_template(template).render(
            app_name=self.name, agency_name=self.agency_name, csp_nonce=nonce, **context
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; "
            f"form-action 'self' {self.issuer_origin}; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        # same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on the
        # sign-out form, and the check of that form's origin would refuse it.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def error(self, title: str, message: str, status: int = 400) -> HTMLResponse:
        return self.page("error.html", status, title=title, message=message)

    def redirect(self, url: str) -> Response:
        response = RedirectResponse(url, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # ---- cookies ---------------------------------------------------------------------------

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def _clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=self.secure)

    def session_of(self, request: Request) -> dict[str, Any] | None:
        """`{"claims": …, "id_token": … | None}` of the signed-in person, or None."""
        data = self.signer.loads(SESSION_PURPOSE, request.cookies.get(self.session_cookie))
        if data is None:
            return None
        id_token = data.get("idt")
        claims = unverified_part(id_token, 1) if isinstance(id_token, str) else data.get("claims")
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= time.time():
            return None
        if self.logouts.ended(claims):  # the agency ended it (back-channel logout)
            return None
        return {"claims": claims, "id_token": id_token if isinstance(id_token, str) else None}

    def _session_value(self, id_token: str, claims: dict[str, Any], max_age: int) -> str:
        """The ID token itself (it is the id_token_hint at sign-out); if it is too large for a
        cookie, its claims alone (sign-out at the agency then asks for a confirmation)."""
        value = self.signer.dumps(SESSION_PURPOSE, {"idt": id_token}, max_age)
        if len(value) + len(self.session_cookie) <= MAX_COOKIE_CHARS:
            return value
        slim = dict(claims)
        memberships = list(slim.get("memberships") or [])
        while True:
            value = self.signer.dumps(SESSION_PURPOSE, {"claims": slim}, max_age)
            if len(value) + len(self.session_cookie) <= MAX_COOKIE_CHARS or not memberships:
                return value
            memberships = memberships[: len(memberships) // 2]
            slim["memberships"] = memberships
            slim["memberships_truncated"] = True

    def pending_of(self, request: Request) -> list[dict[str, Any]]:
        data = self.signer.loads(PENDING_PURPOSE, request.cookies.get(self.pending_cookie))
        entries = data.get("p") if data else None
        if not isinstance(entries, list):
            return []
        now = time.time()
        return [e for e in entries if isinstance(e, dict) and e.get("until", 0) > now]

    def _store_pending(self, response: Response, entries: list[dict[str, Any]]) -> None:
        if entries:
            value = self.signer.dumps(PENDING_PURPOSE, {"p": entries}, PENDING_MAX_AGE)
            self._set(response, self.pending_cookie, value, PENDING_MAX_AGE)
        else:
            self._clear(response, self.pending_cookie)

    # ---- GET / -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is None:
            response = self.page("signed_out.html")
            if self.session_cookie in request.cookies:
                self._clear(response, self.session_cookie)
            return response
        return self.page("home.html", **describe(session["claims"]))

    # ---- GET|POST /login -------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        params: dict[str, str] = {k: v for k, v in request.query_params.items()}
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        issuer = self.rp.settings.issuer
        iss = params.get("iss")
        if iss is not None and iss != issuer:
            log.info("sample app: third-party login from an unknown issuer %r", iss)
            return self.error(
                "This sign-in link is not for this app",
                f"{self.name} signs people in with {issuer} only; the link came from "
                f"{iss or 'an empty issuer'}.",
            )
        target = self.base_url + "/"
        if params.get("target_link_uri"):
            checked = self._target(params["target_link_uri"])
            if checked is None:
                return self.error(
                    "This sign-in link is not valid",
                    f"It asks to continue at an address outside {self.name}.",
                )
            target = checked
        login_hint = params.get("login_hint") or None
        if login_hint is not None and (len(login_hint) > 320 or not login_hint.isprintable()):
            login_hint = None
        entry: dict[str, Any] = {
            "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(64),  # 86 characters: RFC 7636 allows 43..128
            "target": target,
            "until": int(time.time()) + PENDING_MAX_AGE,
        }
        try:
            url = await self.rp.authorization_url(
                state=entry["state"],
                nonce=entry["nonce"],
                code_verifier=entry["verifier"],
                login_hint=login_hint,
            )
        except SignInError as exc:
            return self.error("Signing in is not possible right now", exc.message, exc.status)
        response = self.redirect(url)
        pending = [*self.pending_of(request), entry][-PENDING_MAX_ENTRIES:]
        self._store_pending(response, pending)
        return response

    def _target(self, value: str) -> str | None:
        """A `target_link_uri` is followed only inside this app (never an open redirect)."""
        if len(value) > 2000 or not value.isprintable() or "\\" in value:
            return None
        base = self.base_url + "/"
        if value != self.base_url and not value.startswith(base):
            return None
        parts = urlsplit(value)
        path = parts.path[len(urlsplit(self.base_url).path) :] or "/"
        if path.rstrip("/") in _NOT_A_TARGET:
            return base
        return value if value != self.base_url else base

    # ---- GET /callback ---------------------------------------------------------------------

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        states = query.getlist("state")
        pending = self.pending_of(request)
        entry = None
        if len(states) == 1 and states[0]:
            entry = next(
                (
                    e
                    for e in pending
                    if isinstance(e.get("state"), str)
                    and secrets.compare_digest(e["state"].encode(), states[0].encode())
                ),
                None,
            )
        if entry is None:
            # Not a sign-in this browser started (or one that expired): never go on with it,
            # and leave any sign-in that is really in flight alone.
            log.info("sample app: callback with an unknown state")
            return self.error(
                "This sign-in cannot be completed",
                "It was not started from this browser, or it took too long (state mismatch). "
                "Start again from the sign-in button.",
            )
        rest = [e for e in pending if e is not entry]
        response = await self._complete(query, entry)
        self._store_pending(response, rest)
        return response

    async def _complete(self, query: Any, entry: dict[str, Any]) -> Response:
        issuer = self.rp.settings.issuer
        if "iss" in query and query.get("iss") != issuer:  # RFC 9207 mix-up defence
            return self.error(
                "This sign-in cannot be completed", "The answer came from another issuer."
            )
        if query.get("error"):
            error = query.get("error", "")[:100]
            description = (query.get("error_description") or "")[:300]
            if description:
                message = f"{self.agency_name}: {description} ({error})"
            elif error == "access_denied":
                message = "You did not allow it. You can start again whenever you like."
            else:
                message = f"The agency refused the sign-in ({error})."
            return self.error("You are not signed in", message)
        codes = query.getlist("code")
        if len(codes) != 1 or not codes[0]:
            return self.error("This sign-in cannot be completed", "The answer has no code.")
        try:
            token = await self.rp.exchange(codes[0], entry["verifier"])
            claims = await self.rp.validate_id_token(
                token["id_token"], nonce=entry["nonce"], access_token=token["access_token"]
            )
        except SignInError as exc:
            return self.error("The sign-in was refused", exc.message, exc.status)
        agency = claims.get("agency")
        if isinstance(agency, dict) and isinstance(agency.get("name"), str):
            self.agency_name = agency["name"]
        max_age = max(1, int(claims["exp"] - time.time()))
        response = self.redirect(entry.get("target") or self.base_url + "/")
        value = self._session_value(token["id_token"], claims, max_age)
        self._set(response, self.session_cookie, value, max_age)
        log.info("sample app: %s signed in", claims["sub"])
        return response

    # ---- /logout ---------------------------------------------------------------------------

    async def logout_page(self, request: Request) -> Response:
        session = self.session_of(request)
        if session is None:
            return self.redirect(self.base_url + "/")
        return self.page("logout.html", **describe(session["claims"]))

    async def logout(self, request: Request) -> Response:
        session = self.session_of(request)
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin:
            # Posted from another site: nothing happens unless the person confirms here.
            if session is None:
                return self.redirect(self.base_url + "/")
            return self.page("logout.html", 403, **describe(session["claims"]))
        target = None
        if session is not None or self.session_cookie in request.cookies:
            target = await self.rp.end_session_url(session["id_token"] if session else None)
        response = self.redirect(target or self.base_url + "/")
        self._clear(response, self.session_cookie)
        return response

    # ---- POST /backchannel-logout ----------------------------------------------------------

    async def backchannel_logout(self, request: Request) -> Response:
        """§2.5-2.8: a form POST with one `logout_token`; 200 once the sessions are ended,
        400 with a JSON error otherwise (a provider that cannot be reached to verify the
        token: 503, so that the agency tries again)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _logout_refused("the logout token must be posted as a form")
        form = await request.form()
        tokens = [v for v in form.getlist("logout_token") if isinstance(v, str)]
        if len(tokens) != 1 or not tokens[0]:
            return _logout_refused("exactly one logout_token is required")
        try:
            claims = await self.rp.validate_logout_token(tokens[0])
        except SignInError as exc:
            log.info("sample app: logout token refused: %s", exc.message)
            if exc.status >= 500:
                return JSONResponse(
                    {"error": "temporarily_unavailable", "error_description": exc.message},
                    status_code=503,
                    headers={"Cache-Control": "no-store"},
                )
            return _logout_refused(exc.message)
        if not self.logouts.record(claims):
            log.info("sample app: logout token replayed (jti %s)", claims["jti"])
            return _logout_refused("this logout token was used before (jti)")
        log.info("sample app: the agency signed %s out (back channel)", claims.get("sub"))
        return Response(status_code=200, headers={"Cache-Control": "no-store"})


def _logout_refused(description: str) -> Response:
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )


# ---- what the home page shows --------------------------------------------------------------

ROLE_LABELS = {
    "agency_owner": "Agency owner",
    "agency_admin": "Agency admin",
    "agency_staff": "Agency staff",
    "client_owner": "Client owner",
    "client_member": "Client member",
}
# In the table of businesses, the role inside the business.
IN_BUSINESS = {"client_owner": "Owner", "client_member": "Member"}


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role.replace("_", " ").capitalize())


def _when(ts: Any) -> str | None:
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _in(ts: int) -> str:
    minutes = max(0, int(ts - time.time()) // 60)
    if minutes >= 120:
        return f"in {minutes // 60} hours"
    if minutes >= 1:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    return "in less than a minute"


def describe(claims: dict[str, Any]) -> dict[str, Any]:
    """The page's view of the ID token's claims."""
    agency: dict[str, Any] = claims["agency"] if isinstance(claims.get("agency"), dict) else {}
    memberships = [m for m in claims.get("memberships") or [] if isinstance(m, dict)]
    businesses = [
        {
            "name": m.get("client_name") or m.get("client_id"),
            "id": m.get("client_id"),
            "role": IN_BUSINESS.get(str(m.get("role")), role_label(str(m.get("role", "")))),
        }
        for m in memberships
        if m.get("client_id")
    ]
    agency_roles = [
        role_label(str(m.get("role", ""))) for m in memberships if not m.get("client_id")
    ]
    roles = [str(r) for r in claims.get("roles") or []]
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    return {
        "person": {
            "name": claims.get("name") or email or claims.get("sub"),
            "email": email,
            "email_verified": claims.get("email_verified") is True,
            "sub": claims.get("sub"),
        },
        "agency": {"name": agency.get("name"), "slug": agency.get("slug"), "id": agency.get("id")},
        "businesses": businesses,
        "agency_roles": agency_roles,
        "roles": [(r, role_label(r)) for r in roles],
        "memberships_truncated": bool(claims.get("memberships_truncated")),
        "expires_at": _when(claims.get("exp")),
        "expires_in": _in(claims["exp"]),
        "auth_time": _when(claims.get("auth_time")),
        "claims_json": json.dumps(claims, indent=2, sort_keys=True, ensure_ascii=False),
    }
