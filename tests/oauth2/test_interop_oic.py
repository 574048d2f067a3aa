"""Interoperability proof: an independent relying-party library (`oic`, not Authlib) runs the
whole authorization code + PKCE flow against an agency's provider, with strict ID-token
validation against the discovery document and the JWKS.

The browser part is a person's: an httpx cookie jar signs in through the portal's form (CSRF
token read from the page) and allows the consent screen. The RP's back-channel calls go
through `requests` (oic's own HTTP stack) into the same in-process application.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

import requests
from oic import rndstr
from oic.oic import Client
from oic.oic.message import (
    AccessTokenResponse,
    AuthorizationResponse,
    OpenIDSchema,
    RegistrationResponse,
    verify_id_token,
)
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from oic.utils.keyio import KeyJar
from oic.utils.settings import OicClientSettings
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from starlette.testclient import TestClient

from tests.oauth2.conftest import csrf_of

REDIRECT = "https://solution.example/oidc/callback"


class InProcess(BaseAdapter):
    """A `requests` transport that hands each request to the ASGI application."""

    def __init__(self, tc: TestClient) -> None:
        super().__init__()
        self.tc = tc

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        r = self.tc.request(
            request.method, request.url, content=request.body, headers=dict(request.headers)
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


def _hidden_fields(html: str) -> dict[str, str]:
    import html as h

    return {
        k: h.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    }


def test_oic_relying_party_code_flow_with_pkce(app, operator_headers, monkeypatch):
    backchannel = TestClient(app, base_url="http://testserver", follow_redirects=False)
    session = requests.Session()
    session.mount("http://testserver/", InProcess(backchannel))
    # oic's KeyBundle fetches the JWKS with module-level `requests.get`: same transport.
    monkeypatch.setattr("oic.utils.keyio.requests.get", session.get)

    slug = f"interop-{secrets.token_hex(4)}"
    password = "interop-pass-" + secrets.token_hex(4)
    made = backchannel.post(
        "/api/v1/agencies",
        headers=operator_headers,
        json={
            "slug": slug,
            "name": "Interop Agency",
            "admin_email": f"owner@{slug}.example",
            "admin_name": "Olive Owner",
            "admin_password": password,
        },
    )
    assert made.status_code == 201, made.text
    api = {"Authorization": f"Bearer {made.json()['api_key']}"}
    reg = backchannel.post(
        "/api/v1/oauth-clients",
        headers=api,
        json={"name": "Interop Solution", "redirect_uris": [REDIRECT]},
    )
    assert reg.status_code == 201, reg.text
    registered = reg.json()

    # ---- the relying party: discovery, registration info, authorization request
    issuer = f"http://testserver/a/{slug}"
    rp = Client(
        client_authn_method=CLIENT_AUTHN_METHOD,
        settings=OicClientSettings(requests_session=session, verify_ssl=False),
    )
    provider = rp.provider_config(issuer)  # oic checks the document's issuer is this URL
    assert provider["issuer"] == issuer
    assert rp.keyjar.get_issuer_keys(issuer), "the JWKS was loaded from jwks_uri"
    rp.store_registration_info(
        RegistrationResponse(
            client_id=registered["id"],
            client_secret=registered["client_secret"],
            redirect_uris=[REDIRECT],
            token_endpoint_auth_method="client_secret_basic",
        )
    )
    rp.redirect_uris = [REDIRECT]
    state, nonce = rndstr(32), rndstr(32)
    pkce_args, verifier = rp.add_code_challenge()
    assert pkce_args["code_challenge_method"] == "S256"
    request_args = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": ["openid", "profile", "email", "switchboard:memberships"],
        "nonce": nonce,
        "redirect_uri": REDIRECT,
        "state": state,
        **pkce_args,
    }
    auth_req = rp.construct_AuthorizationRequest(request_args=request_args)
    login_url = auth_req.request(rp.authorization_endpoint)

    # ---- the person, in a browser: redirected to sign in, signs in, allows, comes back
    browser = TestClient(app, base_url="http://testserver", follow_redirects=False)
    resp = browser.get(login_url)
    assert resp.status_code == 303 and "/login?next=" in resp.headers["location"]
    page = browser.get(resp.headers["location"])
    assert page.status_code == 200
    next_url = _hidden_fields(page.text)["next"]
    signed = browser.post(
        f"/a/{slug}/login",
        data={
            "email": f"owner@{slug}.example",
            "password": password,
            "next": next_url,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == next_url
    consent = browser.get(next_url)
    assert consent.status_code == 200 and "Interop Solution" in consent.text
    back = browser.post(
        f"/a/{slug}/oauth2/consent", data={**_hidden_fields(consent.text), "decision": "allow"}
    )
    assert back.status_code == 303
    location = back.headers["location"]
    assert location.startswith(REDIRECT + "?")

    # ---- the relying party again: parse, exchange (with the verifier), validate strictly
    aresp = rp.parse_response(
        AuthorizationResponse, info=urlsplit(location).query, sformat="urlencoded"
    )
    assert aresp["state"] == state
    tokens = rp.do_access_token_request(
        state=state,
        request_args={"code": aresp["code"], "code_verifier": verifier},
        authn_method="client_secret_basic",
    )
    assert isinstance(tokens, AccessTokenResponse), tokens
    assert "error" not in tokens, tokens.to_dict()
    id_token = tokens["id_token"]  # oic verified it already (signature via keyjar, iss, aud)

    # and once more, explicitly and strictly: signature from the JWKS, issuer, audience,
    # expiry, at_hash; then the nonce we sent
    raw = AccessTokenResponse(id_token=id_token.jwt, access_token=tokens["access_token"])
    strict = verify_id_token(
        raw,
        check_hash=True,
        keyjar=rp.keyjar,
        iss=issuer,
        client_id=rp.client_id,
        algs={"sign": "RS256"},
    )
    assert strict["nonce"] == nonce
    assert strict["sub"].startswith("usr_")
    assert strict["email"] == f"owner@{slug}.example"
    assert strict["name"] == "Olive Owner"
    assert strict["agency"]["slug"] == slug
    assert strict["roles"] == ["agency_owner"]
    assert strict.jws_header["kid"] in {k.kid for k in rp.keyjar.get_issuer_keys(issuer)}

    # a JWKS from someone else does not verify it
    other_slug = f"other-{secrets.token_hex(4)}"
    backchannel.post(
        "/api/v1/agencies",
        headers=operator_headers,
        json={
            "slug": other_slug,
            "name": "Other",
            "admin_email": f"o@{other_slug}.example",
            "admin_name": "O",
            "admin_password": password,
        },
    )
    foreign = KeyJar()
    foreign.add(issuer, f"http://testserver/a/{other_slug}/jwks.json")
    try:
        verify_id_token(raw, keyjar=foreign, iss=issuer, client_id=rp.client_id)
    except Exception:  # oic raises one of its own verification errors
        pass
    else:
        raise AssertionError("an ID token verified against another agency's JWKS")

    # ---- userinfo with the access token, through oic
    info = rp.do_user_info_request(state=state)
    assert isinstance(info, OpenIDSchema), info.to_dict()
    assert info["sub"] == strict["sub"] and info["email"] == strict["email"]
