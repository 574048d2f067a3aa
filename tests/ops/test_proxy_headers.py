"""Which proxy's X-Forwarded-For is believed: the address sign-in throttling and the audit
log see must not be one any client can choose."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.settings import Settings

SECRET = "x" * 40


def test_no_proxy_is_trusted_by_default_and_star_is_refused_in_production(tmp_path):
    default = Settings(var_dir=tmp_path)
    assert default.forwarded_allow_ips == ""
    assert default.uvicorn_proxy_options == {"proxy_headers": False}
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        Settings(env="production", secret_key=SECRET, var_dir=tmp_path, forwarded_allow_ips="*")
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        Settings(
            env="production",
            secret_key=SECRET,
            var_dir=tmp_path,
            forwarded_allow_ips="10.0.0.5, *",
        )
    told = Settings(
        env="production",
        secret_key=SECRET,
        var_dir=tmp_path,
        forwarded_allow_ips="*",
        forwarded_allow_any=True,
    )
    assert told.uvicorn_proxy_options == {"proxy_headers": True, "forwarded_allow_ips": "*"}
    named = Settings(
        env="production",
        secret_key=SECRET,
        var_dir=tmp_path,
        forwarded_allow_ips=" 10.0.0.5 , 10.244.0.0/16",
    )
    assert named.uvicorn_proxy_options == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.5,10.244.0.0/16",
    }
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(var_dir=tmp_path, forwarded_allow_ips="proxy.internal")


def test_serve_passes_the_setting_to_uvicorn(monkeypatch):
    import uvicorn

    from services import cli
    from services.settings import reset_settings_cache

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    try:
        reset_settings_cache()
        cli.serve(host="127.0.0.1", port=8001, workers=1)
        monkeypatch.setenv("SWITCHBOARD_FORWARDED_ALLOW_IPS", "10.0.0.5")
        reset_settings_cache()
        cli.serve(host="127.0.0.1", port=8001, workers=1)
    finally:
        monkeypatch.delenv("SWITCHBOARD_FORWARDED_ALLOW_IPS", raising=False)
        reset_settings_cache()
    assert calls[0]["proxy_headers"] is False and "forwarded_allow_ips" not in calls[0]
    assert calls[1]["proxy_headers"] is True and calls[1]["forwarded_allow_ips"] == "10.0.0.5"


async def test_only_the_named_proxy_chooses_the_client_address(app, make_agency, tmp_path):
    """The app as `serve` runs it behind the proxy 10.0.0.5: a forwarded address counts only
    when that proxy sends it."""
    from services.identity.models import AuthThrottle
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant
    from tests.portal.conftest import csrf_of

    options = Settings(var_dir=tmp_path, forwarded_allow_ips="10.0.0.5").uvicorn_proxy_options
    served = ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"])
    agency = await make_agency()

    async def fail_from(peer: str, forwarded: str) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served, client=(peer, 5000)),
            base_url="http://testserver",
            headers={"x-forwarded-for": forwarded},
        ) as b:
            page = await b.get(f"/a/{agency.slug}/login")
            resp = await b.post(
                f"/a/{agency.slug}/login",
                data={
                    "email": agency.owner_email,
                    "password": "guess-guess-1",
                    "csrf_token": csrf_of(page.text),
                },
            )
            assert resp.status_code == 401

    await fail_from("198.51.100.7", "203.0.113.50")  # a client choosing its own address
    await fail_from("10.0.0.5", "203.0.113.60")  # the proxy telling who connected to it
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        keys = set((await session.execute(select(AuthThrottle.key))).scalars())
    assert {"ip:198.51.100.7", "ip:203.0.113.60"} <= keys
    assert "ip:203.0.113.50" not in keys and "ip:10.0.0.5" not in keys
