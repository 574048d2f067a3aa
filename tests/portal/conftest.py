"""Portal test helpers: independent browsers (cookie jars) on the in-process app, CSRF tokens
read from the rendered forms, and people created the way people really arrive (invitation)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "portal-pass-" + secrets.token_hex(4)


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


class Browser:
    """One browser: its own cookie jar, following nothing automatically."""

    def __init__(self, app, base_url: str = "http://testserver") -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=base_url,
            headers={"accept": "text/html"},
        )

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def post(self, url: str, data: dict | None = None, **kw) -> httpx.Response:
        return await self.http.post(url, data=data, **kw)

    async def csrf(self, page_url: str) -> str:
        resp = await self.get(page_url)
        assert resp.status_code == 200, (page_url, resp.status_code, resp.text[:500])
        return csrf_of(resp.text)

    async def submit(self, page_url: str, action: str, data: dict) -> httpx.Response:
        """Load a page, then post its form with the page's CSRF token (like a person)."""
        token = await self.csrf(page_url)
        return await self.post(action, {**data, "csrf_token": token})

    async def sign_in(self, slug: str, email: str, password: str) -> httpx.Response:
        return await self.submit(
            f"/a/{slug}/login", f"/a/{slug}/login", {"email": email, "password": password}
        )

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def new_browser(app) -> AsyncIterator[Callable[..., Browser]]:
    made: list[Browser] = []

    def make(base_url: str = "http://testserver") -> Browser:
        b = Browser(app, base_url)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.aclose()


@pytest.fixture
def owner_browser(new_browser) -> Callable[[object], Awaitable[Browser]]:
    async def open_(agency) -> Browser:
        b = new_browser()
        resp = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
        assert resp.status_code == 303, resp.text[:500]
        return b

    return open_


@pytest.fixture
def make_person(client, new_browser):
    """Invite someone through the API and accept in a fresh browser: `(browser, user_id)`."""

    async def make(
        agency, role: str, client_id: str | None = None, email: str | None = None
    ) -> tuple[Browser, str]:
        email = email or f"{role}-{secrets.token_hex(3)}@people.example"
        body = {"email": email, "role": role, "name": role.replace("_", " ").title()}
        if client_id:
            body["client_id"] = client_id
        resp = await client.post("/api/v1/invitations", headers=agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        path = httpx.URL(resp.json()["url"]).path
        b = new_browser()
        accepted = await b.submit(
            path, path, {"name": body["name"], "password": PASSWORD, "password_confirm": PASSWORD}
        )
        assert accepted.status_code == 303, accepted.text[:800]
        users = (
            await client.get("/api/v1/users", headers=agency.headers, params={"limit": 200})
        ).json()["items"]
        user_id = next(u["id"] for u in users if u["email"] == email)
        return b, user_id

    return make
