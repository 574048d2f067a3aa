"""Scopes of the provider and the API shapes of relying-party registration."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from services.kit import ids, outbound
from services.kit.schemas import CLEARABLE, Output, PatchInput, StrictInput
from services.oauth2.models import ClientType, OAuthClient

# ---- scopes --------------------------------------------------------------------------------

MEMBERSHIPS_SCOPE = "switchboard:memberships"
# Call the Switchboard API (/api/v1) as the person, with their own permissions.
API_SCOPE = "switchboard:api"
# Scopes about a person: granted through the authorization code flow only.
USER_SCOPES = frozenset(
    {"openid", "profile", "email", "offline_access", MEMBERSHIPS_SCOPE, API_SCOPE}
)
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Know who you are (your account id at this agency)",
    "profile": "See your name",
    "email": "See your e-mail address",
    "offline_access": "Stay connected when you are not using it",
    MEMBERSHIPS_SCOPE: "See which businesses you belong to and your role in each",
    API_SCOPE: "See and change your businesses' records as you can yourself",
}
DEFAULT_SCOPES = ["openid", "profile", "email", MEMBERSHIPS_SCOPE]
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
# RFC 6749 §3.3 scope-token characters.
_SCOPE_RE = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,64}$")


def describe_scope(scope: str) -> str:
    return SCOPE_DESCRIPTIONS.get(scope, f"Use “{scope}”")


# ---- validation of what an agency registers ---------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(value: str) -> str:
    """An absolute https URL (http only for this machine: 127.0.0.1, ::1, localhost), with no
    fragment and no credentials. Compared later by exact string match."""
    if len(value) > 2000 or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must be an absolute URL without spaces, at most 2000 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as exc:
        raise ValueError("must be an absolute URL") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an absolute https URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError("must use https (http is allowed for 127.0.0.1 and localhost only)")
    if parts.fragment or "#" in value:
        raise ValueError("must not contain a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    return value


def check_scope(value: str) -> str:
    if not _SCOPE_RE.match(value):
        raise ValueError("must be a scope token (printable ASCII, no spaces, quotes or \\)")
    return value


def check_backchannel_logout_uri(value: str) -> str:
    """OpenID Connect Back-Channel Logout §2.2: an absolute URL (https; http only for this
    machine outside production) without a fragment, that Switchboard may fetch
    (`services/kit/outbound.py`: never this server or a private address in production)."""
    check_redirect_uri(value)
    return outbound.check_url(value)


RedirectUri = Annotated[str, AfterValidator(check_redirect_uri)]
BackchannelLogoutUri = Annotated[str, AfterValidator(check_backchannel_logout_uri)]
_BACKCHANNEL_URI = (
    "OpenID Connect Back-Channel Logout: where Switchboard POSTs a logout token when a person's "
    "portal session ends"
)
_BACKCHANNEL_SID = "the app needs the `sid` claim in logout tokens (Switchboard always sends it)"
Scope = Annotated[str, AfterValidator(check_scope)]


class OAuthClientCreate(StrictInput):
    name: str = Field(min_length=1, max_length=120)
    type: ClientType = ClientType.CONFIDENTIAL
    redirect_uris: list[RedirectUri] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[RedirectUri] = Field(default_factory=list, max_length=20)
    allowed_scopes: list[Scope] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES), min_length=1, max_length=50
    )
    grant_types: list[GrantType] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"],
        min_length=1,
        max_length=3,
    )
    first_party: bool = False
    id_token_signed_response_alg: Literal["RS256", "ES256"] = "RS256"  # noqa: S105
    solution: bool = Field(
        default=False,
        description="sold to clients: listed in the client portal for the clients it is "
        "enabled for; their people may sign in to it only then",
    )
    description: str | None = Field(default=None, max_length=300)
    initiate_login_uri: RedirectUri | None = Field(
        default=None,
        description="where the portal's Open button sends the browser (OpenID Connect "
        "third-party-initiated login, with iss, login_hint and target_link_uri)",
    )
    backchannel_logout_uri: BackchannelLogoutUri | None = Field(
        default=None, description=_BACKCHANNEL_URI
    )
    backchannel_logout_session_required: bool = Field(default=False, description=_BACKCHANNEL_SID)


class OAuthClientUpdate(PatchInput):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    redirect_uris: list[RedirectUri] | None = Field(default=None, max_length=20)
    post_logout_redirect_uris: list[RedirectUri] | None = Field(default=None, max_length=20)
    allowed_scopes: list[Scope] | None = Field(default=None, min_length=1, max_length=50)
    grant_types: list[GrantType] | None = Field(default=None, min_length=1, max_length=3)
    first_party: bool | None = None
    id_token_signed_response_alg: Literal["RS256", "ES256"] | None = None
    solution: bool | None = None
    description: Annotated[str | None, CLEARABLE] = Field(default=None, max_length=300)
    initiate_login_uri: Annotated[RedirectUri | None, CLEARABLE] = None
    backchannel_logout_uri: Annotated[BackchannelLogoutUri | None, CLEARABLE] = Field(
        default=None, description=_BACKCHANNEL_URI
    )
    backchannel_logout_session_required: bool | None = Field(
        default=None, description=_BACKCHANNEL_SID
    )


class OAuthClientOut(Output):
    id: str = Field(description="the client_id the relying party sends")
    name: str
    type: ClientType
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    allowed_scopes: list[str]
    grant_types: list[str]
    first_party: bool
    id_token_signed_response_alg: str
    solution: bool
    description: str | None
    initiate_login_uri: str | None
    backchannel_logout_uri: str | None
    backchannel_logout_session_required: bool
    token_endpoint_auth_method: str
    secret_hint: str | None
    issuer: str
    discovery_url: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: OAuthClient, issuer: str) -> OAuthClientOut:
        public = ClientType(row.client_type) is ClientType.PUBLIC
        return cls(
            id=ids.encode("oac", row.id),
            name=row.name,
            type=ClientType(row.client_type),
            redirect_uris=list(row.redirect_uris),
            post_logout_redirect_uris=list(row.post_logout_redirect_uris),
            allowed_scopes=list(row.allowed_scopes),
            grant_types=list(row.grant_types),
            first_party=row.first_party,
            id_token_signed_response_alg=row.id_token_signed_response_alg,
            solution=row.solution,
            description=row.description,
            initiate_login_uri=row.initiate_login_uri,
            backchannel_logout_uri=row.backchannel_logout_uri,
            backchannel_logout_session_required=row.backchannel_logout_session_required,
            token_endpoint_auth_method="none" if public else "client_secret_basic",
            secret_hint=row.secret_hint,
            issuer=issuer,
            discovery_url=f"{issuer}/.well-known/openid-configuration",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class OAuthClientCreated(OAuthClientOut):
    client_secret: str | None = Field(
        description="confidential clients: the secret, shown once; store it now"
    )


class ClientSolutionOut(Output):
    """A solution enabled for a client."""

    solution_id: str = Field(description="the relying party's client_id (oac_...)")
    name: str
    description: str | None
    enabled_at: datetime
