"""How faithful the upstream-IdP sandbox (`tests/upstream_idp.py`) is, checked without
Switchboard's own client code:

* its discovery documents carry the fields (and the values that matter) of the vendors' real
  ones, written down here from the vendors' documentation;
* an independent relying-party library, `oic` (pyoidc), discovers it *at the vendors' real
  issuer addresses* (requests to https://accounts.google.com and
  https://login.microsoftonline.com are routed to the sandbox), runs the code flow with PKCE
  and verifies the ID tokens strictly (signature from the JWKS, issuer, audience, expiry,
  at_hash, nonce);
* Authlib's OAuth client authenticates both ways the vendors accept (client_secret_post and
  client_secret_basic) and gets each vendor's error shapes back for a wrong verifier, a
  reused code and a wrong secret.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from oic import rndstr
from oic.oic import Client
from oic.oic.message import AccessTokenResponse, AuthorizationResponse, RegistrationResponse
from oic.oic.message import verify_id_token as oic_verify_id_token
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from oic.utils.settings import OicClientSettings
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from starlette.testclient import TestClient

from services.kit.authlib_http import for_authlib
from tests.upstream_idp import MS_CONSUMERS, Person, UpstreamIdP

REDIRECT = "https://switchboard.example/a/acme/login/upstream/{vendor}/callback"

# Google: the fields of the discovery document listed in Google's OpenID Connect reference
# (https://developers.google.com/identity/openid-connect/reference#discovery-document).
GOOGLE_DISCOVERY_FIELDS = {
    "issuer",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "revocation_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "scopes_supported",
    "token_endpoint_auth_methods_supported",
    "claims_supported",
    "code_challenge_methods_supported",
    "grant_types_supported",
}
# Microsoft identity platform v2.0: the members of the `common` authority's document
# (https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration, as shown in
# "OpenID Connect on the Microsoft identity platform" and captured in public test fixtures).
MICROSOFT_DISCOVERY_FIELDS = {
    "token_endpoint",
    "token_endpoint_auth_methods_supported",
    "jwks_uri",
    "response_modes_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "response_types_supported",
    "scopes_supported",
    "issuer",
    "request_uri_parameter_supported",
    "userinfo_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "http_logout_supported",
    "frontchannel_logout_supported",
    "end_session_endpoint",
    "claims_supported",
    "kerberos_endpoint",
    "tenant_region_scope",
    "cloud_instance_name",
    "cloud_graph_host_name",
    "msgraph_host",
    "rbac_url",
}
# The ID-token claims each vendor documents for this flow (scope openid email profile).
GOOGLE_ID_TOKEN_CLAIMS = {
    "iss",
    "azp",
    "aud",
    "sub",
    "email",
    "email_verified",
    "at_hash",
    "nonce",
    "name",
    "picture",
    "given_name",
    "family_name",
    "iat",
    "exp",
}
MICROSOFT_ID_TOKEN_CLAIMS = {
    "aud",
    "iss",
    "iat",
    "nbf",
    "exp",
    "aio",
    "email",
    "name",
    "nonce",
    "oid",
    "preferred_username",
    "rh",
    "sid",
    "sub",
    "tid",
    "uti",
    "ver",
}


def _claims(raw: str) -> dict:
    payload = raw.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _header(raw: str) -> dict:
    head = raw.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


# ---- the documents ------------------------------------------------------------------------------


def test_google_discovery_has_the_real_shape():
    idp = UpstreamIdP()
    doc = TestClient(idp.app).get("/google/.well-known/openid-configuration").json()
    assert set(doc) >= GOOGLE_DISCOVERY_FIELDS
    assert doc["issuer"] == "https://accounts.google.com"
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["plain", "S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }
    assert {"openid", "email", "profile"} <= set(doc["scopes_supported"])
    assert {"email_verified", "sub", "iss", "aud", "exp", "iat"} <= set(doc["claims_supported"])
    # the real paths (on the real hosts accounts.google.com, oauth2.googleapis.com, ...)
    assert doc["authorization_endpoint"].endswith("/o/oauth2/v2/auth")
    assert doc["token_endpoint"].endswith("/token")
    assert doc["jwks_uri"].endswith("/oauth2/v3/certs")
    assert doc["userinfo_endpoint"].endswith("/v1/userinfo")
    keys = TestClient(idp.app).get("/google/oauth2/v3/certs").json()["keys"]
    assert len(keys) == 2  # Google publishes its next key ahead of using it
    assert all(set(k) == {"kty", "alg", "use", "kid", "n", "e"} for k in keys)


@pytest.mark.parametrize("authority", ["common", "organizations"])
def test_microsoft_multi_tenant_discovery_has_the_issuer_template(authority):
    idp = UpstreamIdP()
    http = TestClient(idp.app)
    doc = http.get(f"/microsoft/{authority}/v2.0/.well-known/openid-configuration").json()
    assert set(doc) >= MICROSOFT_DISCOVERY_FIELDS
    assert "code_challenge_methods_supported" not in doc  # Microsoft does not advertise PKCE
    assert doc["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0"
    assert doc["subject_types_supported"] == ["pairwise"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
    ]
    assert doc["userinfo_endpoint"].endswith("/oidc/userinfo")  # graph.microsoft.com
    for name, tail in (
        ("authorization_endpoint", f"/{authority}/oauth2/v2.0/authorize"),
        ("token_endpoint", f"/{authority}/oauth2/v2.0/token"),
        ("jwks_uri", f"/{authority}/discovery/v2.0/keys"),
        ("end_session_endpoint", f"/{authority}/oauth2/v2.0/logout"),
    ):
        assert doc[name].endswith(tail), name
    [key] = http.get(urlsplit(doc["jwks_uri"]).path).json()["keys"]
    assert key["issuer"] == doc["issuer"] and key["x5t"] == key["kid"] and key["x5c"]


def test_microsoft_directory_and_consumers_discovery_name_their_directory():
    idp = UpstreamIdP()
    tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    http = TestClient(idp.app)
    one = http.get(f"/microsoft/{tid}/v2.0/.well-known/openid-configuration").json()
    assert one["issuer"] == f"https://login.microsoftonline.com/{tid}/v2.0"
    consumers = http.get("/microsoft/consumers/v2.0/.well-known/openid-configuration").json()
    assert consumers["issuer"] == f"https://login.microsoftonline.com/{MS_CONSUMERS}/v2.0"


# ---- an independent relying party (oic) at the vendors' own issuer addresses ------------------


class Sandbox(BaseAdapter):
    """`requests` → the sandbox: the vendors' real hosts are rewritten to its paths."""

    def __init__(self, idp: UpstreamIdP) -> None:
        super().__init__()
        self.tc = TestClient(idp.app, base_url=idp.base, follow_redirects=False)
        self.base = idp.base

    def _local(self, url: str) -> str:
        for real, local in (
            ("https://accounts.google.com/", f"{self.base}/google/"),
            ("https://login.microsoftonline.com/", f"{self.base}/microsoft/"),
        ):
            if url.startswith(real):
                return local + url[len(real) :]
        return url

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        r = self.tc.request(
            request.method,
            self._local(request.url),
            content=request.body,
            headers=dict(request.headers),
        )
        resp = requests.Response()
        resp.status_code = r.status_code
        resp._content = r.content
        resp.headers = CaseInsensitiveDict(r.headers)
        resp.url = request.url
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


def _oic_flow(monkeypatch, idp: UpstreamIdP, vendor: str, issuer: str) -> tuple[dict, str]:
    session = requests.Session()
    adapter = Sandbox(idp)
    for prefix in ("https://accounts.google.com/", "https://login.microsoftonline.com/"):
        session.mount(prefix, adapter)
    session.mount(idp.base + "/", adapter)
    monkeypatch.setattr("oic.utils.keyio.requests.get", session.get)
    redirect = REDIRECT.format(vendor=vendor)
    client_id, secret = idp.register(vendor, redirect)

    rp = Client(
        client_authn_method=CLIENT_AUTHN_METHOD,
        settings=OicClientSettings(requests_session=session, verify_ssl=False),
    )
    provider = rp.provider_config(issuer)  # oic checks the document names this issuer
    assert provider["issuer"] == issuer
    rp.store_registration_info(
        RegistrationResponse(
            client_id=client_id,
            client_secret=secret,
            redirect_uris=[redirect],
            token_endpoint_auth_method="client_secret_post",
        )
    )
    rp.redirect_uris = [redirect]
    state, nonce = rndstr(32), rndstr(32)
    pkce, verifier = rp.add_code_challenge()
    request = rp.construct_AuthorizationRequest(
        request_args={
            "client_id": client_id,
            "response_type": "code",
            "scope": ["openid", "email", "profile"],
            "nonce": nonce,
            "redirect_uri": redirect,
            "state": state,
            **pkce,
        }
    )
    url = request.request(rp.authorization_endpoint)
    back = adapter.tc.get(url)  # the person: approved at once by the sandbox
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(redirect + "?")
    answer = rp.parse_response(
        AuthorizationResponse, info=urlsplit(location).query, sformat="urlencoded"
    )
    assert answer["state"] == state
    tokens = rp.do_access_token_request(
        state=state,
        request_args={"code": answer["code"], "code_verifier": verifier},
        authn_method="client_secret_post",
    )
    assert isinstance(tokens, AccessTokenResponse) and "error" not in tokens, tokens.to_dict()
    strict = oic_verify_id_token(
        AccessTokenResponse(id_token=tokens["id_token"].jwt, access_token=tokens["access_token"]),
        # Google puts at_hash in ID tokens from the token endpoint; Microsoft documents that
        # it does not (and oic's check demands one).
        check_hash=vendor == "google",
        keyjar=rp.keyjar,
        iss=issuer,
        client_id=client_id,
        algs={"sign": "RS256"},
    )
    assert strict["nonce"] == nonce
    return strict.to_dict(), tokens["id_token"].jwt


def test_oic_signs_in_at_google_sandbox(monkeypatch):
    idp = UpstreamIdP("http://idp.test")
    person = idp.sign_in_as("google", Person(email="ada@example.com", name="Ada Lovelace"))
    claims, raw = _oic_flow(monkeypatch, idp, "google", "https://accounts.google.com")
    assert set(claims) >= GOOGLE_ID_TOKEN_CLAIMS
    assert claims["sub"] == person.sub and len(claims["sub"]) == 21 and claims["sub"].isdigit()
    assert claims["email_verified"] is True and claims["aud"] == [claims["azp"]]
    assert claims["exp"] - claims["iat"] <= 3600
    assert set(_header(raw)) == {"alg", "kid", "typ"}


def test_oic_signs_in_at_microsoft_sandbox_single_directory(monkeypatch):
    idp = UpstreamIdP("http://idp.test")
    person = idp.sign_in_as(
        "microsoft", Person(email="grace@contoso.example", name="Grace Hopper", xms_edov=True)
    )
    issuer = f"https://login.microsoftonline.com/{person.tid}/v2.0"
    claims, _ = _oic_flow(monkeypatch, idp, "microsoft", issuer)
    assert set(claims) >= MICROSOFT_ID_TOKEN_CLAIMS
    assert claims["tid"] == person.tid and claims["oid"] == person.oid
    assert claims["ver"] == "2.0" and claims["xms_edov"] is True
    assert "at_hash" not in claims  # not on ID tokens from the token endpoint


def test_microsoft_sub_is_pairwise_and_email_may_be_absent(monkeypatch):
    idp = UpstreamIdP("http://idp.test")
    person = idp.sign_in_as("microsoft", Person(email=None, name="No Mailbox"))
    issuer = f"https://login.microsoftonline.com/{person.tid}/v2.0"
    first, _ = _oic_flow(monkeypatch, idp, "microsoft", issuer)
    second, _ = _oic_flow(monkeypatch, idp, "microsoft", issuer)  # another app registration
    assert "email" not in first and "xms_edov" not in first
    assert first["oid"] == second["oid"] and first["sub"] != second["sub"]


# ---- Authlib's client: both client authentications, the vendors' error shapes -----------------


@pytest.mark.parametrize("vendor", ["google", "microsoft"])
@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
async def test_authlib_client_and_error_shapes(vendor, auth_method):
    idp = UpstreamIdP("http://idp.test")
    idp.sign_in_as(vendor, Person(email="kim@example.com", xms_edov=True))
    redirect = REDIRECT.format(vendor=vendor)
    client_id, secret = idp.register(vendor, redirect)
    transport = httpx.ASGITransport(app=idp.app)
    if vendor == "google":
        doc_url = f"{idp.base}/google/.well-known/openid-configuration"
    else:
        doc_url = f"{idp.base}/microsoft/common/v2.0/.well-known/openid-configuration"
    async with httpx.AsyncClient(transport=transport) as http:
        doc = (await http.get(doc_url)).json()

    def oauth(secret_: str = secret) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=client_id,
            client_secret=secret_,
            token_endpoint_auth_method=auth_method,
            scope="openid email profile",
            redirect_uri=redirect,
            code_challenge_method="S256",
            transport=for_authlib(transport),
        )

    async def code_for(verifier: str) -> str:
        async with oauth() as client:
            url, _ = client.create_authorization_url(
                doc["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
            )
        async with httpx.AsyncClient(transport=transport) as http:
            back = await http.get(url)
        return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

    verifier = "v" * 64
    code = await code_for(verifier)
    async with oauth() as client:
        token = await client.fetch_token(
            doc["token_endpoint"],
            code=code,
            code_verifier=verifier,
            grant_type="authorization_code",
        )
    assert token["token_type"] == "Bearer" and _claims(token["id_token"])["nonce"] == "n-0S6_WzA2Mj"
    expected = {"access_token", "expires_in", "token_type", "scope", "id_token"}
    if vendor == "microsoft":
        expected |= {"ext_expires_in"}
    assert expected <= set(token)
    basic = idp.token_requests[-1]
    assert ("client_secret" in basic) == (auth_method == "client_secret_post")

    # a reused code
    async with oauth() as client:
        with pytest.raises(OAuthError) as reused:
            await client.fetch_token(
                doc["token_endpoint"],
                code=code,
                code_verifier=verifier,
                grant_type="authorization_code",
            )
    assert reused.value.error == "invalid_grant"
    # a wrong PKCE verifier
    code = await code_for(verifier)
    async with oauth() as client:
        with pytest.raises(OAuthError) as wrong_verifier:
            await client.fetch_token(
                doc["token_endpoint"],
                code=code,
                code_verifier="w" * 64,
                grant_type="authorization_code",
            )
    assert wrong_verifier.value.error == "invalid_grant"
    # a wrong secret: 401 invalid_client; Microsoft's body carries AADSTS codes
    code = await code_for(verifier)
    async with httpx.AsyncClient(transport=transport) as http:
        resp = await http.post(
            doc["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
                "client_secret": "not-the-secret",
                "redirect_uri": redirect,
                "code_verifier": verifier,
            },
        )
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.headers["cache-control"] == "no-store"
    if vendor == "microsoft":
        assert resp.json()["error_description"].startswith("AADSTS")
        assert {"error_codes", "timestamp", "trace_id", "correlation_id"} <= set(resp.json())
    else:
        assert set(resp.json()) == {"error", "error_description"}


def test_authorization_endpoint_refuses_unknown_clients_and_redirects_on_a_page():
    idp = UpstreamIdP()
    http = TestClient(idp.app, follow_redirects=False)
    redirect = REDIRECT.format(vendor="google")
    client_id, _ = idp.register("google", redirect)
    unknown = http.get("/google/o/oauth2/v2/auth", params={"client_id": "nobody"})
    assert unknown.status_code == 401 and "invalid_client" in unknown.text
    mismatch = http.get(
        "/google/o/oauth2/v2/auth",
        params={"client_id": client_id, "redirect_uri": "https://evil.example/cb"},
    )
    assert mismatch.status_code == 400 and "redirect_uri_mismatch" in mismatch.text
    idp.deny_next = "access_denied"
    denied = http.get(
        "/google/o/oauth2/v2/auth",
        params={
            "client_id": client_id,
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "openid email",
            "state": "xyz",
        },
    )
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": ["xyz"],
    }
