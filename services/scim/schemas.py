"""SCIM shapes: the User and Group resources this server serves (built on `scim2-models`, so
the published schemas, validation, PATCH semantics and serialization come from one place),
the discovery documents, and the API shapes of SCIM tokens.

The resources declare exactly the attributes Switchboard stores; a directory that sends more
(nickName, addresses, the enterprise extension...) has them ignored, not refused, as Okta and
Entra ID expect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    ETag,
    Filter,
    GroupMembership,
    Mutability,
    Patch,
    Reference,
    Required,
    Resource,
    ResourceType,
    Returned,
    Schema,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

from services.kit import ids
from services.kit.schemas import Output, StrictInput
from services.scim.models import ScimToken

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_RESULTS = 200  # the largest page (`count`) a list answers
DEFAULT_COUNT = 100

# What this server tolerates from directories: attributes it does not store are dropped
# (Okta and Entra ID send many), a `remove` carrying a value selects what to remove and a
# PATCH path filter matching nothing creates the entry (both as Entra ID sends them).
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


class Name(ComplexAttribute):
    formatted: str | None = None
    """The full name; Switchboard shows it wherever the person is named."""

    family_name: str | None = None
    given_name: str | None = None


class Email(ComplexAttribute):
    value: str | None = None
    type: str | None = Field(None, examples=["work", "home", "other"])
    primary: bool | None = None


class User(Resource[Any]):
    """A person who signs in to the agency. `userName` is their sign-in e-mail."""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Required.true, Uniqueness.server] = None
    """Unique identifier for the User: the e-mail address the person signs in with."""

    name: Name | None = None
    """The components of the user's name."""

    emails: list[Email] | None = None
    """E-mail addresses for the User, as the directory lists them."""

    active: Annotated[bool | None, Required.true] = None
    """Whether the person may sign in. False disables them and ends their sessions;
    omitted on creation it defaults to true."""

    password: Annotated[str | None, Mutability.write_only, Returned.never] = None
    """A sign-in password (at least 10 characters); never returned."""

    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None
    """The groups (roles and client teams) the user belongs to."""


class GroupMember(ComplexAttribute):
    value: Annotated[str | None, Mutability.immutable, CaseExact.true] = None
    """The id of the member User."""

    ref: Annotated[Reference[User] | None, Mutability.immutable] = Field(
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the member User."""

    type: Annotated[str | None, Mutability.immutable] = Field(None, examples=["User"])
    """Always "User": groups do not nest."""


class Group(Resource[Any]):
    """A role at agency scope, a client's team, or a group the directory created."""

    __schema__ = URN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true] = None
    """The group's name, unique in the agency."""

    members: list[GroupMember] | None = None
    """The users in the group."""


def service_provider_config() -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri="https://switchboard.dev/docs/scim",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=True),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="SCIM bearer token",
                description="A token issued per agency by POST /api/v1/scim-tokens or "
                "`switchboard scim-token create`, sent as `Authorization: Bearer <token>`.",
                primary=True,
            )
        ],
    )


def _schema(model: type[Resource[Any]], name: str, description: str) -> Schema:
    schema = model.to_schema()
    schema.name = name
    schema.description = description
    return schema


USER_TYPE = ResourceType(
    id="User",
    name="User",
    endpoint="/Users",
    description="People who sign in to the agency",
    schema_=USER_SCHEMA,
)
GROUP_TYPE = ResourceType(
    id="Group",
    name="Group",
    endpoint="/Groups",
    description="Agency roles, client teams and directory groups",
    schema_=GROUP_SCHEMA,
)

PROVIDER = ScimProvider(
    models=[User, Group],
    resource_types=[USER_TYPE, GROUP_TYPE],
    config=service_provider_config(),
    policy=POLICY,
)

RESOURCE_TYPES: dict[str, ResourceType] = {"User": USER_TYPE, "Group": GROUP_TYPE}
SCHEMAS: dict[str, Schema] = {
    USER_SCHEMA: _schema(User, "User", "User Account"),
    GROUP_SCHEMA: _schema(Group, "Group", "Group"),
    **{
        str(m.__schema__): _schema(m, m.__name__, m.__name__)
        for m in (ServiceProviderConfig, ResourceType, Schema)
    },
}


# ---- the API shapes of SCIM tokens ------------------------------------------------------


class ScimTokenCreate(StrictInput):
    name: str = Field(default="SCIM token", min_length=1, max_length=120)


class ScimTokenOut(Output):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ScimToken) -> ScimTokenOut:
        return cls(
            id=ids.encode("sct", t.id),
            name=t.name,
            prefix=t.prefix,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            revoked_at=t.revoked_at,
        )


class ScimTokenCreated(ScimTokenOut):
    token: str = Field(description="the bearer token; shown once, store it now")
    base_url: str = Field(description="the SCIM base URL to give the directory")
