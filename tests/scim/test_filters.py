"""SCIM filters (every operator, logic, parentheses, attribute paths, value paths), invalid
filters, pagination (startIndex, count, totalResults, caps) and sorting."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from services.scim import filters
from services.scim.repository import GROUP_ATTRIBUTES, USER_ATTRIBUTES
from tenants.models import User
from tests.scim.conftest import assert_scim_error

PEOPLE = [
    # userName, given, family, emails (value, type), externalId, active
    ("alice@acme.example", "Alice", "Archer", [("alice@acme.example", "work")], "ext-1", True),
    ("bob@acme.example", "Bob", "Baker", [("bob@home.example", "home")], "ext-2", False),
    ("carol@beta.example", "Carol", "Archer", [("carol@beta.example", "work")], "EXT-3", True),
    ("dave@beta.example", "Dave", None, [], None, True),
    ("eve_100%@gamma.example", "Eve", "Evans", [("eve@gamma.example", "work")], "ext-5", True),
]


@pytest.fixture
async def people(make_scim):
    scim = await make_scim()
    made = {}
    for user_name, given, family, emails, external, active in PEOPLE:
        name = {"givenName": given, **({"familyName": family} if family else {})}
        attrs = {
            "name": name,
            "active": active,
            "emails": [{"value": v, "type": t} for v, t in emails],
            **({"externalId": external} if external else {}),
        }
        made[user_name.split("@")[0]] = await scim.create_user(user_name, **attrs)
    return scim, made


async def _names(scim, flt: str, **params) -> list[str]:
    resp = await scim.get("/Users", params={"filter": flt, "sortBy": "userName", **params})
    assert resp.status_code == 200, (flt, resp.text)
    body = resp.json()
    assert body["totalResults"] == len(body.get("Resources", [])), body
    return [r["userName"].split("@")[0] for r in body.get("Resources", [])]


CASES = [
    ('userName eq "alice@acme.example"', ["alice"]),
    ('USERNAME eq "ALICE@ACME.EXAMPLE"', ["alice"]),  # names and values case-insensitive
    ('userName ne "alice@acme.example" and userName ew "acme.example"', ["bob"]),
    ('userName co "beta"', ["carol", "dave"]),
    ('userName sw "c"', ["carol"]),
    ('userName ew ".example"', ["alice", "bob", "carol", "dave", "eve_100%"]),
    ('userName co "100%"', ["eve_100%"]),  # LIKE wildcards are literal
    ('userName co "_"', ["eve_100%"]),
    ('userName gt "carol@beta.example"', ["dave", "eve_100%"]),
    ('userName ge "carol@beta.example"', ["carol", "dave", "eve_100%"]),
    ('userName lt "bob@acme.example"', ["alice"]),
    ('userName le "bob@acme.example"', ["alice", "bob"]),
    ('name.familyName eq "archer"', ["alice", "carol"]),
    ("name.familyName pr", ["alice", "bob", "carol", "eve_100%"]),
    ("not (name.familyName pr)", ["dave"]),
    ('name.familyName ne "Archer"', ["bob", "dave", "eve_100%"]),  # unassigned matches ne
    ('name.givenName sw "a" or name.givenName sw "e"', ["alice", "eve_100%"]),
    ('name[givenName eq "Bob" or familyName eq "Evans"]', ["bob", "eve_100%"]),
    ('name.formatted co "Carol Arch"', ["carol"]),
    ("name pr", ["alice", "bob", "carol", "dave", "eve_100%"]),
    ('emails.value co "home"', ["bob"]),
    ('emails co "gamma"', ["eve_100%"]),  # a bare multi-valued attribute means its value
    ('emails[type eq "work" and value ew "beta.example"]', ["carol"]),
    ('emails[type eq "home"] or emails.value sw "alice"', ["alice", "bob"]),
    ("emails pr", ["alice", "bob", "carol", "eve_100%"]),
    ("not (emails pr)", ["dave"]),
    ('emails.type eq "work" and not (emails.value co "acme")', ["carol", "eve_100%"]),
    ('externalId eq "EXT-3"', ["carol"]),
    ('externalId eq "ext-3"', []),  # externalId is caseExact
    ("externalId pr and active eq false", ["bob"]),
    ('active eq true and (userName sw "a" or userName sw "d")', ["alice", "dave"]),
    ("active ne true", ["bob"]),
    ('not (active eq true) or userName eq "alice@acme.example"', ["alice", "bob"]),
    (
        '(userName sw "a" or userName sw "b") and (name.familyName eq "Baker" or active eq true)',
        ["alice", "bob"],
    ),
    ('meta.resourceType eq "User" and userName sw "d"', ["dave"]),
    ('meta.resourceType eq "Group"', []),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@acme.example"', ["bob"]),
    ('id eq "usr_1"', []),
    ('id ne "not-an-id" and userName sw "al"', ["alice"]),
]


@pytest.mark.parametrize(("flt", "expected"), CASES)
async def test_filter(people, flt, expected):
    scim, _ = people
    everyone = {"alice", "bob", "carol", "dave", "eve_100%"}
    got = await _names(scim, flt)
    # The owner made by the agency fixture is the only other user; ignore them.
    assert [n for n in got if n != "owner"] == expected
    assert set(expected) <= everyone


async def test_filter_by_id_dates_and_groups(people):
    scim, made = people
    alice = made["alice"]
    assert await _names(scim, f'id eq "{alice["id"]}"') == ["alice"]
    created = alice["meta"]["created"]
    later = made["carol"]["meta"]["created"]
    assert await _names(scim, f'meta.created eq "{created}"') == ["alice"]
    after = await _names(scim, f'meta.created gt "{created}"')
    assert after == ["bob", "carol", "dave", "eve_100%"]
    assert await _names(scim, f'meta.created lt "{later}" and meta.created ge "{created}"') == [
        "alice",
        "bob",
    ]
    assert "eve_100%" in await _names(
        scim, f'meta.lastModified le "{made["eve_100%"]["meta"]["lastModified"]}"'
    )
    staff = await scim.group_named("Agency staff")
    await scim.patch(
        f"/Groups/{staff['id']}",
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
    )
    team = await scim.create_group("Designers", [made["bob"]["id"]])
    assert await _names(scim, f'groups.value eq "{staff["id"]}"') == ["alice"]
    assert await _names(scim, f'groups eq "{team["id"]}"') == ["bob"]
    assert await _names(scim, 'groups pr and not (userName sw "owner@")') == ["alice", "bob"]


async def test_group_filters(make_scim, make_client):
    scim = await make_scim()
    await make_client(scim.agency, legal_name="Bella Vista", display_name="Bella Vista")
    user = await scim.create_user("member@example.com")
    team = await scim.group_named("Client: Bella Vista — members")
    await scim.patch(
        f"/Groups/{team['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
    )
    own = await scim.create_group("Marketing", [user["id"]], externalId="okta-g1")

    async def names(flt: str) -> list[str]:
        resp = await scim.get("/Groups", params={"filter": flt, "sortBy": "displayName"})
        assert resp.status_code == 200, resp.text
        return [g["displayName"] for g in resp.json().get("Resources", [])]

    assert await names('displayName sw "client: bella"') == [
        "Client: Bella Vista — members",
        "Client: Bella Vista — owners",
    ]
    assert await names('displayName eq "agency ADMINS"') == ["Agency admins"]
    assert await names(f'members.value eq "{user["id"]}"') == [
        "Client: Bella Vista — members",
        "Marketing",
    ]
    assert await names(f'members[value eq "{user["id"]}" and type eq "User"]') == [
        "Client: Bella Vista — members",
        "Marketing",
    ]
    assert await names('externalId eq "okta-g1"') == ["Marketing"]
    assert "Agency owners" in await names("members pr")
    assert await names('not (members pr) and displayName co "Bella"') == [
        "Client: Bella Vista — owners"
    ]
    assert await names(f'id eq "{own["id"]}" or displayName ew "staff"') == [
        "Agency staff",
        "Marketing",
    ]


@pytest.mark.parametrize(
    "flt",
    [
        "userName",  # no operator
        "userName eq",  # no value
        'userName xx "a"',  # unknown operator
        'userName eq "a" and',  # dangling logic
        '(userName eq "a"',  # unbalanced parentheses
        'userName eq "a")',
        "userName eq unquoted",
        'nickName eq "x"',  # an attribute this server does not have
        'emails.nope eq "x"',
        "active gt true",  # ordering on a boolean
        'active eq "yes"',  # a string for a boolean
        'meta.created co "2020"',  # substring on a dateTime
        'meta.created gt "yesterday"',  # not a dateTime
        "userName eq 42",  # a number for a string
        'id gt "usr_1"',
        'urn:other:schema:userName eq "x"',
        'emails[type eq "work"',
        'name.givenName[value eq "x"]',
        " ",
        "x" * 5000,
    ],
)
async def test_invalid_filters_are_400_invalid_filter(make_scim, flt):
    scim = await make_scim()
    assert_scim_error(await scim.get("/Users", params={"filter": flt}), 400, "invalidFilter")


async def test_invalid_group_filter(make_scim):
    scim = await make_scim()
    resp = await scim.get("/Groups", params={"filter": 'userName eq "x"'})
    assert_scim_error(resp, 400, "invalidFilter")


async def test_pagination_and_sorting(people):
    scim, _ = people
    base = {"filter": 'userName ew ".example" and not (userName sw "owner@")', "sortBy": "userName"}
    first = (await scim.get("/Users", params={**base, "count": 2})).json()
    assert first["totalResults"] == 5 and first["itemsPerPage"] == 2 and first["startIndex"] == 1
    assert [r["userName"][:3] for r in first["Resources"]] == ["ali", "bob"]
    second = (await scim.get("/Users", params={**base, "count": 2, "startIndex": 3})).json()
    assert [r["userName"][:3] for r in second["Resources"]] == ["car", "dav"]
    last = (await scim.get("/Users", params={**base, "count": 2, "startIndex": 5})).json()
    assert [r["userName"][:3] for r in last["Resources"]] == ["eve"]
    beyond = (await scim.get("/Users", params={**base, "startIndex": 50})).json()
    assert beyond["totalResults"] == 5 and beyond.get("Resources", []) == []
    only_total = (await scim.get("/Users", params={**base, "count": 0})).json()
    assert only_total["totalResults"] == 5 and only_total.get("Resources", []) == []
    negative = (await scim.get("/Users", params={**base, "count": -3, "startIndex": -1})).json()
    assert negative["totalResults"] == 5 and negative["startIndex"] == 1
    desc = (await scim.get("/Users", params={**base, "sortOrder": "descending"})).json()
    assert [r["userName"][:3] for r in desc["Resources"]] == ["eve", "dav", "car", "bob", "ali"]
    by_family = (
        await scim.get("/Users", params={**base, "sortBy": "name.familyName", "count": 2})
    ).json()
    assert {r["name"]["familyName"] for r in by_family["Resources"]} == {"Archer"}
    for bad in (
        {"count": "many"},
        {"startIndex": "1.5"},
        {"sortOrder": "sideways"},
        {"sortBy": "emails"},
        {"sortBy": "nope"},
    ):
        assert_scim_error(await scim.get("/Users", params={**base, **bad}), 400)


async def test_count_is_capped(make_scim):
    scim = await make_scim()
    resp = (await scim.get("/Users", params={"count": 100000})).json()
    assert resp["itemsPerPage"] <= 200


async def test_search_endpoint(people):
    scim, _ = people
    resp = await scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'name.familyName eq "Archer"',
            "sortBy": "userName",
            "sortOrder": "descending",
            "attributes": ["userName"],
            "startIndex": 1,
            "count": 10,
        },
    )
    assert resp.status_code == 200, resp.text
    found = resp.json()["Resources"]
    assert [r["userName"] for r in found] == ["carol@beta.example", "alice@acme.example"]
    assert set(found[0]) == {"schemas", "id", "userName"}
    groups = await scim.post("/Groups/.search", {"filter": 'displayName sw "Agency"'})
    assert groups.json()["totalResults"] == 3
    assert_scim_error(await scim.post("/Users/.search", {"count": "x"}), 400)
    assert_scim_error(await scim.post("/Users/.search", {"filter": "a eq"}), 400, "invalidFilter")


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_filters_compile_to_sql_not_python(dialect):
    """The whole filter becomes one SQL WHERE clause, with values as bound parameters."""
    cond = filters.to_condition(
        'emails[type eq "work" and value co "x%"] or (userName sw "a" and not (active eq true))',
        USER_ATTRIBUTES,
    )
    sql = str(select(User.id).where(cond).compile(dialect=dialect))
    assert "EXISTS" in sql and "LIKE" in sql and "x%" not in sql
    group_cond = filters.to_condition(
        'members.value ne "usr_1" or displayName pr', GROUP_ATTRIBUTES
    )
    assert "EXISTS" in str(group_cond.compile(dialect=dialect))


async def test_search_across_resource_types(people):
    scim, made = people
    await scim.create_group("Archers", [made["alice"]["id"]])
    body = {"filter": 'name.familyName eq "Archer" or displayName eq "archers"', "sortBy": "id"}
    resp = await scim.post("/.search", body)
    assert resp.status_code == 200, resp.text
    found = resp.json()
    assert found["totalResults"] == 3
    kinds = [
        (r["meta"]["resourceType"], r.get("userName") or r["displayName"])
        for r in found["Resources"]
    ]
    assert sorted(kinds) == [
        ("Group", "Archers"),
        ("User", "alice@acme.example"),
        ("User", "carol@beta.example"),
    ]
    assert [k for k, _ in kinds] == ["User", "User", "Group"]  # Users first, then Groups
    # The page window runs across both.
    page = (await scim.post("/.search", {**body, "startIndex": 2, "count": 2})).json()
    assert page["totalResults"] == 3 and page["startIndex"] == 2
    assert [r["meta"]["resourceType"] for r in page["Resources"]] == ["User", "Group"]
    only = (await scim.post("/.search", {**body, "attributes": ["displayName"]})).json()
    assert {k for r in only["Resources"] for k in r} <= {"schemas", "id", "displayName"}
    # userName exists for Users only: it is false for Groups, not an error.
    users = (await scim.post("/.search", {"filter": 'userName sw "bob"'})).json()
    assert [r["userName"] for r in users["Resources"]] == ["bob@acme.example"]
    assert_scim_error(await scim.post("/.search", {"filter": 'nope eq "x"'}), 400, "invalidFilter")
    assert_scim_error(await scim.post("/.search", {"sortBy": "nope"}), 400, "invalidFilter")
    assert_scim_error(await scim.post("/.search", {"filter": "userName eq"}), 400, "invalidFilter")
