"""Who may act on whom, through every door: every write that touches a person or a role
(REST API, portal forms, SCIM, invitations), tried by every principal of a lower rank (agency
admin and staff, client owner and member, each by API key and by their own session, and the
SCIM directory), is refused (403, or 404 where the caller cannot see the object) and changes
nothing. The rule itself is `services.identity.access`.

The write routes are read from the application (the OpenAPI document and every router the
app includes), so a new write route fails `test_every_write_route_is_classified` until it is
either covered here (it touches a person or a role) or listed, with its reason, as not.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRoute

from tests.helpers import grant_as_owner
from tests.oauth2.conftest import oidc  # noqa: F401  (fixture)
from tests.portal.conftest import PASSWORD, Browser, csrf_of, make_person, new_browser  # noqa: F401
from tests.scim.conftest import ERROR, GROUP, PATCH, USER, issue_token

SCIM = "/a/{slug}/scim/v2"
API_SCOPES = ["openid", "profile", "email", "switchboard:memberships", "switchboard:api"]

# Writes that touch a person or a role: each is tried below, by every lower principal.
USER_WRITES = {
    ("PATCH", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/memberships"),
    ("PATCH", "/api/v1/memberships/{membership_id}"),
    ("DELETE", "/api/v1/memberships/{membership_id}"),
    ("POST", "/api/v1/invitations"),
    ("DELETE", "/api/v1/invitations/{invitation_id}"),
    ("POST", "/a/{slug}/team/invitations"),
    ("POST", "/a/{slug}/team/invitations/{invitation_id}/revoke"),
    ("POST", f"{SCIM}/Users"),
    ("PUT", f"{SCIM}/Users/{{user_id}}"),
    ("PATCH", f"{SCIM}/Users/{{user_id}}"),
    ("DELETE", f"{SCIM}/Users/{{user_id}}"),
    ("PUT", f"{SCIM}/Groups/{{group_id}}"),
    ("PATCH", f"{SCIM}/Groups/{{group_id}}"),
}

# Every other write, and why it is not a write to someone else's person or roles.
NOT_USER_WRITES = {
    ("POST", "/api/v1/agencies"): "operator only (onboarding makes the first owner)",
    ("PATCH", "/api/v1/agencies/{agency_id}"): "operator only",
    ("PATCH", "/api/v1/agency"): "the agency's branding",
    ("POST", "/api/v1/clients"): "client record",
    ("PATCH", "/api/v1/clients/{client_id}"): "client record (staff assignment: clients:assign)",
    ("POST", "/api/v1/clients/{client_id}/lifecycle"): "client record",
    ("DELETE", "/api/v1/clients/{client_id}"): "client record",
    ("PUT", "/api/v1/clients/{client_id}/solutions/{solution_id}"): "clients:solutions",
    ("DELETE", "/api/v1/clients/{client_id}/solutions/{solution_id}"): "clients:solutions",
    ("POST", "/api/v1/api-keys"): "a credential of the agency; its role: access.check_grant",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "a credential of the agency",
    ("PUT", "/api/v1/agency/sign-in-providers/{provider}"): "agency settings",
    ("DELETE", "/api/v1/agency/sign-in-providers/{provider}"): "agency settings",
    ("POST", "/api/v1/scim-tokens"): "a credential of the agency",
    ("DELETE", "/api/v1/scim-tokens/{token_id}"): "a credential of the agency",
    ("POST", "/api/v1/oauth-clients"): "relying parties",
    ("PATCH", "/api/v1/oauth-clients/{oauth_client_id}"): "relying parties",
    ("POST", "/api/v1/oauth-clients/{oauth_client_id}/secret"): "relying parties",
    ("DELETE", "/api/v1/oauth-clients/{oauth_client_id}"): "relying parties",
    ("POST", f"{SCIM}/Users/.search"): "a query",
    ("POST", f"{SCIM}/Groups/.search"): "a query",
    ("POST", f"{SCIM}/.search"): "a query",
    ("POST", f"{SCIM}/Groups"): "directory groups grant nothing; built-in names are taken",
    ("DELETE", f"{SCIM}/Groups/{{group_id}}"): "directory groups only (built-in: 403)",
    **{(m, f"{SCIM}/{{rest:path}}"): "unknown SCIM resources" for m in ("POST", "PUT")},
    **{(m, f"{SCIM}/{{rest:path}}"): "unknown SCIM resources" for m in ("PATCH", "DELETE")},
    ("POST", "/a/{slug}/oauth2/token"): "OpenID provider (the person's own consent)",
    ("POST", "/a/{slug}/oauth2/userinfo"): "OpenID provider",
    ("POST", "/a/{slug}/oauth2/revoke"): "OpenID provider",
    ("POST", "/a/{slug}/oauth2/introspect"): "OpenID provider",
    ("POST", "/a/{slug}/oauth2/authorize"): "OpenID provider (the person's own consent)",
    ("POST", "/a/{slug}/oauth2/consent"): "the person's own consent",
    ("POST", "/a/{slug}/oauth2/logout"): "the person's own session",
    ("POST", "/a/{slug}/login"): "the person's own sign-in",
    ("POST", "/a/{slug}/login/verify"): "the person's own sign-in",
    ("POST", "/a/{slug}/login/verify/passkey/options"): "the person's own sign-in",
    ("POST", "/a/{slug}/login/verify/passkey"): "the person's own sign-in",
    ("POST", "/a/{slug}/login/passkey/options"): "the person's own sign-in",
    ("POST", "/a/{slug}/login/passkey"): "the person's own sign-in",
    ("POST", "/a/{slug}/logout"): "the person's own session",
    ("POST", "/a/{slug}/forgot"): "the person's own mailbox",
    ("POST", "/a/{slug}/reset/{token}"): "the person's own mailbox",
    ("POST", "/a/{slug}/invite/{token}"): "the invitee accepts for themselves",
    ("POST", "/a/{slug}/account/mfa/start"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/mfa/confirm"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/mfa/remove"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/sessions/revoke"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/recovery-codes"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/passkeys/options"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/passkeys"): "the signed-in person's own account",
    ("POST", "/a/{slug}/account/passkeys/{passkey_id}/rename"): "the person's own passkey",
    ("POST", "/a/{slug}/account/passkeys/{passkey_id}/remove"): "the person's own passkey",
    ("POST", "/a/{slug}/clients"): "client record",
    ("POST", "/a/{slug}/clients/{client_id}/edit"): "client record",
    ("POST", "/a/{slug}/clients/{client_id}/lifecycle"): "client record",
    ("POST", "/a/{slug}/clients/{client_id}/impersonate"): (
        "an audited session as a client person; writes nothing of them (clients:impersonate;"
        " acting as them: access.decide, tests/portal/test_impersonation.py)"
    ),
    ("POST", "/a/{slug}/impersonation/end"): "the impersonation session",
    ("POST", "/a/{slug}/settings/branding"): "agency settings",
    ("POST", "/a/{slug}/settings/apps"): "relying parties",
    ("POST", "/a/{slug}/settings/apps/{app_id}"): "relying parties",
    ("POST", "/a/{slug}/settings/apps/{app_id}/clients"): "clients:solutions",
    ("POST", "/a/{slug}/settings/apps/{app_id}/secret"): "relying parties",
    ("POST", "/a/{slug}/settings/apps/{app_id}/delete"): "relying parties",
    ("POST", "/a/{slug}/settings/sign-in/{provider}"): "agency settings",
    ("POST", "/a/{slug}/settings/sign-in/{provider}/remove"): "agency settings",
}

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _write_routes(app: Any, spec: dict) -> set[tuple[str, str]]:
    """Every write route: those in the OpenAPI document, and those kept out of it (SCIM, the
    OpenID provider, the portal), found by walking every router the app includes."""
    found = {
        (m.upper(), path)
        for path, ops in spec["paths"].items()
        for m in ops
        if m.upper() in WRITE_METHODS
    }

    def walk(routes: list[Any]) -> Iterator[APIRoute]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield from walk(inner.routes)
            elif isinstance(route, APIRoute):
                yield route

    for route in walk(app.routes):
        if not route.include_in_schema:
            found |= {(m, route.path) for m in route.methods if m in WRITE_METHODS}
    return found


async def test_every_write_route_is_classified(app, client):
    spec = (await client.get("/openapi.json")).json()
    found = _write_routes(app, spec)
    assert len(found) > 60
    assert not USER_WRITES & set(NOT_USER_WRITES)
    unclassified = found - USER_WRITES - set(NOT_USER_WRITES)
    assert not unclassified, f"classify these write routes in this file: {sorted(unclassified)}"
    gone = (USER_WRITES | set(NOT_USER_WRITES)) - found
    assert not gone, f"routes listed here that the app no longer has: {sorted(gone)}"


# ---- the world ------------------------------------------------------------------------------


@dataclass
class Person:
    label: str
    user_id: str
    email: str
    browser: Browser | None = None
    token: str | None = None  # an OAuth access token for the API, as the person
    # membership on the shop (for PATCH/DELETE of it)
    shop_membership: str = ""


@dataclass
class Caller:
    """One lower principal, by one credential."""

    label: str
    api: dict[str, str] | None = None  # Authorization header for /api/v1
    browser: Browser | None = None  # a portal session
    scim: dict[str, str] | None = None  # Authorization header for SCIM
    targets: list[str] = field(default_factory=list)


@dataclass
class World:
    agency: Any
    shop: dict
    other: dict
    people: dict[str, Person]
    invitations: dict[str, str]  # role → pending invitation id
    groups: dict[str, str]  # SCIM group name → id
    scim_headers: dict[str, str]


async def _api_key(client, agency, role: str, client_id: str | None = None) -> dict[str, str]:
    body = {"name": f"{role} key", "role": role}
    if client_id:
        body["client_id"] = client_id
    resp = await client.post("/api/v1/api-keys", headers=agency.headers, json=body)
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['key']}"}


async def _membership_on(client, agency, user_id: str, client_id: str) -> str:
    user = (await client.get(f"/api/v1/users/{user_id}", headers=agency.headers)).json()
    return next(m["id"] for m in user["memberships"] if m["client_id"] == client_id)


async def _invite_as_owner(agency, role: str) -> str:
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.principal import Principal
    from tenants.roles import Role
    from tenants.scoping import scope_to

    owner = Principal.acting_in(agency.id, agency.slug, "test: acting as the owner")
    async with unit_of_work() as session:
        await scope_to(session, owner)
        issued = await identity.invite(
            session, owner, email=f"{role}-{secrets.token_hex(3)}@new.example", role=Role(role)
        )
        return ids.encode("inv", issued.invitation.id)


async def _world(client, make_agency, make_client, make_person, oidc) -> World:  # noqa: F811
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Shop", display_name="Shop")
    other = await make_client(agency, legal_name="Other", display_name="Other")
    rp = await oidc.register(agency, allowed_scopes=API_SCOPES, first_party=True)
    people: dict[str, Person] = {
        "owner": Person("agency owner", agency.owner_user_id, agency.owner_email)
    }
    await grant_as_owner(agency, agency.owner_user_id, "client_owner", shop["id"])
    for label, role, on in (
        ("admin", "agency_admin", None),
        ("staff", "agency_staff", None),
        ("client_owner", "client_owner", shop["id"]),
        ("client_member", "client_member", shop["id"]),
        ("two_clients", "client_member", other["id"]),
    ):
        email = f"{label}-{secrets.token_hex(3)}@people.example"
        browser, user_id = await make_person(agency, role, client_id=on, email=email)
        people[label] = Person(label, user_id, email, browser=browser)
    # Everyone is on the shop's team, so the shop's own people can see them all.
    for label in ("admin", "staff", "two_clients"):
        role = "client_owner" if label == "two_clients" else "client_member"
        made = await client.post(
            "/api/v1/memberships",
            headers=agency.headers,
            json={"user_id": people[label].user_id, "role": role, "client_id": shop["id"]},
        )
        assert made.status_code == 201, made.text
    assigned = await client.patch(
        f"/api/v1/clients/{shop['id']}",
        headers=agency.headers,
        json={"assigned_staff": [people["staff"].user_id]},
    )
    assert assigned.status_code == 200, assigned.text
    for p in people.values():
        p.shop_membership = await _membership_on(client, agency, p.user_id, shop["id"])
        if p.browser is not None:
            b = await oidc.signed_in_browser(agency, email=p.email, password=PASSWORD)
            p.token = (await oidc.tokens(rp, b, scope="openid switchboard:api"))["access_token"]
    invitations = {r: await _invite_as_owner(agency, r) for r in ("agency_owner", "agency_admin")}
    token = (await issue_token(client, agency))["token"]
    scim = {"Authorization": f"Bearer {token}"}
    listed = await client.get(f"/a/{agency.slug}/scim/v2/Groups?count=200", headers=scim)
    groups = {g["displayName"]: g["id"] for g in listed.json()["Resources"]}
    return World(agency, shop, other, people, invitations, groups, scim)


async def _callers(client, w: World) -> list[Caller]:
    a, p = w.agency, w.people
    below_admin = ["owner"]
    below_staff = ["owner", "admin"]
    on_shop = ["owner", "admin", "staff", "two_clients"]
    out = [
        Caller("agency admin key", api=a.headers, targets=below_admin),
        Caller("agency admin session", browser=p["admin"].browser, targets=below_admin),
        Caller(
            "agency staff key", api=await _api_key(client, a, "agency_staff"), targets=below_staff
        ),
        Caller("agency staff session", browser=p["staff"].browser, targets=below_staff),
        Caller(
            "client owner key",
            api=await _api_key(client, a, "client_owner", w.shop["id"]),
            targets=on_shop,
        ),
        Caller("client owner session", browser=p["client_owner"].browser, targets=on_shop),
        Caller(
            "client member key",
            api=await _api_key(client, a, "client_member", w.shop["id"]),
            targets=[*on_shop, "client_owner"],
        ),
        Caller(
            "client member session",
            browser=p["client_member"].browser,
            targets=[*on_shop, "client_owner"],
        ),
        Caller("SCIM directory", scim=w.scim_headers, targets=["owner"]),
    ]
    for label, person in (
        ("agency admin", "admin"),
        ("agency staff", "staff"),
        ("client owner", "client_owner"),
        ("client member", "client_member"),
    ):
        session_caller = next(c for c in out if c.label == f"{label} session")
        session_caller.api = {"Authorization": f"Bearer {p[person].token}"}
    return out


async def _snapshot(client, w: World) -> dict:
    a = w.agency
    return {
        "people": {
            k: (await client.get(f"/api/v1/users/{p.user_id}", headers=a.headers)).json()
            for k, p in w.people.items()
        },
        "invitations": (await client.get("/api/v1/invitations", headers=a.headers)).json(),
        "scim_owner": (
            await client.get(
                f"/a/{a.slug}/scim/v2/Users/{a.owner_user_id}",
                headers=w.scim_headers,
            )
        ).json(),
    }


# ---- the attempts ---------------------------------------------------------------------------


@dataclass
class Attempt:
    route: tuple[str, str]
    method: str
    url: str
    json: Any = None
    form: dict[str, str] | None = None
    refusals: tuple[int, ...] = (403, 404)


def _api_attempts(w: World, caller: Caller, target: Person) -> Iterator[Attempt]:
    # A client the caller may name: its own for client-scoped callers, else one the target
    # has no role on yet (so the write would succeed without the rule).
    scoped = caller.label.startswith(("client", "agency staff session"))
    client_id = w.shop["id"] if scoped else w.other["id"]
    yield from (
        Attempt(("PATCH", "/api/v1/users/{user_id}"), "PATCH", f"/api/v1/users/{target.user_id}", b)
        for b in ({"name": "Pwned"}, {"status": "disabled"})
    )
    yield Attempt(
        ("POST", "/api/v1/memberships"),
        "POST",
        "/api/v1/memberships",
        {"user_id": target.user_id, "role": "client_member", "client_id": client_id},
    )
    mem = f"/api/v1/memberships/{target.shop_membership}"
    route = "/api/v1/memberships/{membership_id}"
    yield Attempt(("PATCH", route), "PATCH", mem, {"role": "client_member"})
    yield Attempt(("PATCH", route), "PATCH", mem, {"role": "client_owner"})
    yield Attempt(("DELETE", route), "DELETE", mem)
    yield Attempt(
        ("POST", "/api/v1/invitations"),
        "POST",
        "/api/v1/invitations",
        {"email": target.email, "role": "client_member", "client_id": client_id},
    )


def _invitation_attempts(w: World, caller: Caller) -> Iterator[Attempt]:
    # An invitation to a role above the caller's (the admin: an owner's).
    role = "agency_owner" if caller.label.startswith("agency admin") else "agency_admin"
    inv = w.invitations[role]
    if caller.api is not None:
        yield Attempt(
            ("DELETE", "/api/v1/invitations/{invitation_id}"),
            "DELETE",
            f"/api/v1/invitations/{inv}",
        )
    if caller.browser is not None:
        yield Attempt(
            ("POST", "/a/{slug}/team/invitations/{invitation_id}/revoke"),
            "POST",
            f"/a/{w.agency.slug}/team/invitations/{inv}/revoke",
            form={},
        )


def _portal_attempts(w: World, caller: Caller, target: Person) -> Iterator[Attempt]:
    scoped = caller.label.startswith(("client", "agency staff"))
    yield Attempt(
        ("POST", "/a/{slug}/team/invitations"),
        "POST",
        f"/a/{w.agency.slug}/team/invitations",
        form={
            "email": target.email,
            "name": "Pwned",
            "role": "client_member",
            "client_id": w.shop["id"] if scoped else w.other["id"],
        },
        refusals=(403, 404, 422),  # the form says why, on the re-rendered page
    )


def _scim_attempts(w: World) -> Iterator[Attempt]:
    owner = w.people["owner"]
    base = f"/a/{w.agency.slug}/scim/v2"
    user_url, user_route = f"{base}/Users/{owner.user_id}", f"{SCIM}/Users/{{user_id}}"
    group_route = f"{SCIM}/Groups/{{group_id}}"
    hijack = "attacker-chosen-password-1"
    for body in (
        {"schemas": [USER], "userName": owner.email, "password": hijack},
        {"schemas": [USER], "userName": "attacker@evil.example"},
        {"schemas": [USER], "userName": owner.email, "active": False},
        {"schemas": [USER], "userName": owner.email, "name": {"formatted": "Pwned"}},
    ):
        yield Attempt(("PUT", user_route), "PUT", user_url, body)
    for op in (
        {"op": "replace", "path": "password", "value": hijack},
        {"op": "replace", "path": "userName", "value": "attacker@evil.example"},
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": "name.formatted", "value": "Pwned"},
        {"op": "replace", "path": "externalId", "value": "evil"},
        {"op": "add", "path": "emails", "value": [{"value": "a@evil.example"}]},
    ):
        body = {"schemas": [PATCH], "Operations": [op]}
        yield Attempt(("PATCH", user_route), "PATCH", user_url, body)
    yield Attempt(("DELETE", user_route), "DELETE", user_url)
    # The person exists: a POST of their userName is a conflict, and touches nothing.
    yield Attempt(
        ("POST", f"{SCIM}/Users"),
        "POST",
        f"{base}/Users",
        {"schemas": [USER], "userName": owner.email, "password": hijack},
        refusals=(403, 409),
    )
    member = [{"value": owner.user_id}]
    for name in (
        "Agency admins",
        "Agency staff",
        "Client: Shop — members",
        "Client: Other — owners",
    ):
        gid = w.groups[name]
        yield Attempt(
            ("PUT", group_route),
            "PUT",
            f"{base}/Groups/{gid}",
            {"schemas": [GROUP], "displayName": name, "members": member},
        )
        op = {"op": "add", "path": "members", "value": member}
        body = {"schemas": [PATCH], "Operations": [op]}
        yield Attempt(("PATCH", group_route), "PATCH", f"{base}/Groups/{gid}", body)
    for name in ("Agency owners", "Client: Shop — owners"):
        op = {"op": "remove", "path": f'members[value eq "{owner.user_id}"]'}
        body = {"schemas": [PATCH], "Operations": [op]}
        yield Attempt(("PATCH", group_route), "PATCH", f"{base}/Groups/{w.groups[name]}", body)


async def _send(client, caller: Caller, attempt: Attempt):
    if attempt.form is not None:
        assert caller.browser is not None
        page = await caller.browser.get(f"/a/{attempt.url.split('/')[2]}/account")
        token = csrf_of(page.text)
        return await caller.browser.post(attempt.url, {**attempt.form, "csrf_token": token})
    headers = caller.scim if attempt.route[1].startswith(SCIM) else caller.api
    return await client.request(attempt.method, attempt.url, headers=headers, json=attempt.json)


async def test_no_lower_principal_can_change_a_higher_person(
    app,
    client,
    make_agency,
    make_client,
    make_person,  # noqa: F811
    oidc,  # noqa: F811
):
    w = await _world(client, make_agency, make_client, make_person, oidc)
    callers = await _callers(client, w)
    before = await _snapshot(client, w)
    tried: set[tuple[str, str]] = set()
    failures: list[tuple] = []
    for caller in callers:
        attempts: list[Attempt] = list(_invitation_attempts(w, caller)) if not caller.scim else []
        for label in caller.targets:
            target = w.people[label]
            if caller.api is not None:
                attempts += _api_attempts(w, caller, target)
            if caller.browser is not None:
                attempts += _portal_attempts(w, caller, target)
        if caller.scim is not None:
            attempts += _scim_attempts(w)
        for attempt in attempts:
            resp = await _send(client, caller, attempt)
            tried.add(attempt.route)
            where = (caller.label, attempt.method, attempt.url, attempt.json or attempt.form)
            if resp.status_code not in attempt.refusals:
                failures.append((*where, resp.status_code, resp.text[:200]))
            elif attempt.route[1].startswith(SCIM) and resp.status_code != 409:
                assert resp.json()["schemas"] == [ERROR], resp.text
        after = await _snapshot(client, w)
        if after != before:
            failures.append((caller.label, "changed something"))
            before = after
    assert not failures, "\n".join(map(str, failures))
    assert tried == USER_WRITES, USER_WRITES - tried
    # The owner's password is still theirs.
    b = Browser(app)
    try:
        signed_in = await b.sign_in(w.agency.slug, w.agency.owner_email, w.agency.owner_password)
        assert signed_in.status_code == 303
    finally:
        await b.aclose()
