"""OpenID Connect test helpers: relying parties registered through the API, browsers (own
cookie jars) that sign in through the portal form like a person, and the code + PKCE flow."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
REDIRECT = "https://rp.example/cb"
LOGOUT_REDIRECT = "https://rp.example/bye"


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, f"no CSRF field in the page: {html[:300]}"
    return found.group(1)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def resumed(resp: httpx.Response) -> str:
    """Where the page after sign-in (`oauth2/resume`) sends the browser: a page that moves on
    by itself (meta refresh), so that the sign-in form's CSP does not block the redirect."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert resp.headers["cache-control"] == "no-store"
    found = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', resp.text)
    assert found, resp.text[:500]
    return _unescape(found.group(1))


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class RP:
    agency: object
    data: dict
    verifier: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def secret(self) -> str | None:
        return self.data.get("client_secret")

    @property
    def auth(self) -> dict[str, str]:
        return basic(self.id, self.secret) if self.secret else {}

    def token_form(self, **form: str) -> dict[str, str]:
        return form if self.secret else {"client_id": self.id, **form}


class OIDC:
    def __init__(self, app, client) -> None:
        self.app = app
        self.api = client
        self.browsers: list[httpx.AsyncClient] = []

    # -- relying parties
    async def register(self, agency, **fields) -> RP:
        body = {
            "name": "Reviews app",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [LOGOUT_REDIRECT],
            **fields,
        }
        resp = await self.api.post("/api/v1/oauth-clients", headers=agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        return RP(agency, resp.json())

    # -- browsers
    def browser(self) -> httpx.AsyncClient:
        b = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://testserver",
            headers={"accept": "text/html"},
        )
        self.browsers.append(b)
        return b

    async def sign_in(
        self,
        b: httpx.AsyncClient,
        agency,
        email=None,
        password=None,
        next_url: str | None = None,
        reauth: bool = False,
    ) -> httpx.Response:
        url = f"/a/{agency.slug}/login"
        params = {"next": next_url} if next_url else {}
        if reauth:  # the form a signed-in browser gets when an app asks for a fresh sign-in
            params["reauth"] = "1"
        page = await b.get(url, params=params or None)
        assert page.status_code == 200, page.text[:300]
        form = {
            "email": email or agency.owner_email,
            "password": password or agency.owner_password,
            "csrf_token": csrf_of(page.text),
        }
        if next_url:
            form["next"] = next_url
        resp = await b.post(url, data=form)
        assert resp.status_code == 303, resp.text[:500]
        return resp

    async def signed_in_browser(self, agency, **kw) -> httpx.AsyncClient:
        b = self.browser()
        await self.sign_in(b, agency, **kw)
        return b

    # -- the authorization request
    def params(self, rp: RP, **over) -> dict[str, str]:
        verifier, challenge = pkce()
        rp.verifier = verifier
        params = {
            "response_type": "code",
            "client_id": rp.id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile email switchboard:memberships",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(over)
        return {k: v for k, v in params.items() if v is not None}

    async def authorize(self, b: httpx.AsyncClient, rp: RP, **over) -> httpx.Response:
        return await b.get(f"/a/{rp.agency.slug}/oauth2/authorize", params=self.params(rp, **over))

    async def consent(
        self, b: httpx.AsyncClient, page: httpx.Response, decision: str = "allow"
    ) -> httpx.Response:
        assert page.status_code == 200 and "oauth2/consent" in page.text, page.text[:500]
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields = {k: _unescape(v) for k, v in fields.items()}
        fields["decision"] = decision
        slug = urlsplit(str(page.url)).path.split("/")[2]
        return await b.post(f"/a/{slug}/oauth2/consent", data=fields)

    async def code(self, b: httpx.AsyncClient, rp: RP, **over) -> tuple[str, dict]:
        """Run the authorization request (consenting if asked) and return (code, params)."""
        params = self.params(rp, **over)
        resp = await b.get(f"/a/{rp.agency.slug}/oauth2/authorize", params=params)
        if resp.status_code == 200:
            resp = await self.consent(b, resp)
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
        location = resp.headers["location"]
        assert location.startswith(REDIRECT), location
        q = query_of(location)
        assert q.get("state") == params["state"], q
        assert "code" in q, q
        return q["code"], params

    async def exchange(
        self, rp: RP, code: str, verifier: str | None = None, redirect_uri: str = REDIRECT
    ) -> httpx.Response:
        form = rp.token_form(
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier or rp.verifier,
        )
        return await self.api.post(f"/a/{rp.agency.slug}/oauth2/token", data=form, headers=rp.auth)

    async def tokens(self, rp: RP, b: httpx.AsyncClient | None = None, **over) -> dict:
        b = b or await self.signed_in_browser(rp.agency)
        code, _ = await self.code(b, rp, **over)
        resp = await self.exchange(rp, code)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def refresh(self, rp: RP, refresh_token: str) -> httpx.Response:
        form = rp.token_form(grant_type="refresh_token", refresh_token=refresh_token)
        return await self.api.post(f"/a/{rp.agency.slug}/oauth2/token", data=form, headers=rp.auth)

    async def userinfo(self, agency, access_token: str) -> httpx.Response:
        return await self.api.get(
            f"/a/{agency.slug}/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def close(self) -> None:
        for b in self.browsers:
            await b.aclose()


def _unescape(value: str) -> str:
    return (
        value.replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


@pytest.fixture
async def oidc(app, client):
    helper = OIDC(app, client)
    yield helper
    await helper.close()
