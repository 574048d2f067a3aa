"""SCIM fixtures: an agency with a SCIM token, and a small client for its SCIM service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class Scim:
    """One agency's SCIM service as its directory sees it."""

    client: Any
    agency: Any
    token: str
    token_id: str
    base: str
    headers: dict[str, str] = field(default_factory=dict)

    async def request(self, method: str, path: str, **kw: Any):
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, self.base + path, headers=headers, **kw)

    async def get(self, path: str, **kw: Any):
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any):
        return await self.request("POST", path, json=body, **kw)

    async def put(self, path: str, body: Any, **kw: Any):
        return await self.request("PUT", path, json=body, **kw)

    async def patch(self, path: str, *operations: dict, **kw: Any):
        body = {"schemas": [PATCH], "Operations": list(operations)}
        return await self.request("PATCH", path, json=body, **kw)

    async def delete(self, path: str, **kw: Any):
        return await self.request("DELETE", path, **kw)

    async def create_user(self, user_name: str, **attrs: Any) -> dict:
        resp = await self.post("/Users", {"schemas": [USER], "userName": user_name, **attrs})
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def create_group(self, name: str, members: list[str] = (), **attrs: Any) -> dict:
        body = {
            "schemas": [GROUP],
            "displayName": name,
            "members": [{"value": m} for m in members],
            **attrs,
        }
        resp = await self.post("/Groups", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def group_named(self, name: str) -> dict:
        resp = await self.get("/Groups", params={"filter": f'displayName eq "{name}"'})
        assert resp.status_code == 200, resp.text
        found = resp.json()["Resources"]
        assert len(found) == 1, (name, found)
        return found[0]


async def issue_token(client, agency, name: str = "Okta") -> dict:
    resp = await client.post("/api/v1/scim-tokens", headers=agency.headers, json={"name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture
def make_scim(client, make_agency):
    async def create(agency=None) -> Scim:
        agency = agency or await make_agency()
        issued = await issue_token(client, agency)
        return Scim(
            client=client,
            agency=agency,
            token=issued["token"],
            token_id=issued["id"],
            base=f"/a/{agency.slug}/scim/v2",
            headers={"Authorization": f"Bearer {issued['token']}"},
        )

    return create


def assert_scim_error(resp, status: int, scim_type: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(SCIM_JSON), resp.headers["content-type"]
    body = resp.json()
    assert body["schemas"] == [ERROR], body
    assert str(body["status"]) == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body
