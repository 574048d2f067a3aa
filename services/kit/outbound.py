"""Which URLs an agency may make Switchboard fetch, and the one way to fetch them.

Agencies register URLs that the server itself calls (today: back-channel logout URIs). Such a
URL could aim the server at itself or at the private network it runs in (server-side request
forgery). The rule is written here once, and every door (the API, the portal's apps console,
the tasks that send) goes through it:

* **at registration** (`check_url`): an absolute https URL without spaces, fragment, user name
  or password; a host given as an IP address must be a public one. Outside production (and
  in production only with `SWITCHBOARD_OUTBOUND_ALLOW_PRIVATE=true`) loopback and private
  addresses are accepted, and http is accepted for loopback hosts, as for redirect URIs;
* **at fetch time** (`post_form`): the URL is checked again, its host name is resolved and every
  address it resolves to must be allowed; the request is sent to the address that was checked
  (the name is not resolved a second time, so DNS rebinding cannot swap it) with the original
  Host header and TLS server name; redirects are never followed.

Never allowed, whatever the setting: link-local (cloud metadata at 169.254.169.254),
multicast, unspecified and reserved addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import anyio
import httpx

from services.settings import get_settings

MAX_URL_CHARS = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL is not one Switchboard may be made to fetch (the message says why)."""


def private_allowed() -> bool:
    settings = get_settings()
    return settings.env != "production" or settings.outbound_allow_private


def address_allowed(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        return False
    if ip.is_global:
        return True
    if ip.is_loopback or ip.is_private:  # (::1 is also in a "reserved" block: ask this first)
        return private_allowed()
    return False  # reserved, shared address space, documentation ranges


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _literal(host)
    return ip is not None and ip.is_loopback


def check_url(value: str) -> str:
    """The registration-time rule (see the module's docstring). Raises `Refused`."""
    if len(value) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in value):
        raise Refused(f"must be an absolute URL without spaces, at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError as exc:
        raise Refused("must be an absolute URL") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise Refused("must be an absolute https URL")
    if parts.fragment or "#" in value:
        raise Refused("must not contain a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise Refused("must not contain a user name or password")
    loopback = _is_loopback_host(host)
    if loopback and not private_allowed():
        raise Refused("must not point at this server (localhost or a loopback address)")
    if parts.scheme == "http" and not loopback:
        raise Refused("must use https (http is allowed for 127.0.0.1 and localhost only)")
    ip = _literal(host)
    if ip is not None and not address_allowed(ip):
        raise Refused("must not point at a private, link-local or reserved address")
    return value


async def _checked_address(host: str, port: int) -> str:
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    elif host == "localhost" or host.endswith(".localhost"):
        addresses = ["127.0.0.1"]
    else:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpx.ConnectError(f"{host} could not be resolved: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpx.ConnectError(f"{host} resolves to no address")
    for address in addresses:
        ip = _literal(address)
        if ip is None or not address_allowed(ip):
            raise Refused(f"{host} resolves to an address Switchboard may not call ({address})")
    return addresses[0]


async def post_form(
    url: str, fields: Mapping[str, str], *, timeout_seconds: float, user_agent: str = "Switchboard"
) -> httpx.Response:
    """POST `fields` as application/x-www-form-urlencoded to an agency-registered URL, under
    the rule above. Raises `Refused` for a URL that may not be fetched, `httpx.HTTPError` for
    network failures and timeouts."""
    check_url(url)
    target = httpx.URL(url)
    host = target.host
    port = target.port or (443 if target.scheme == "https" else 80)
    address = await _checked_address(host, port)
    pinned = target.copy_with(host=address)
    headers = {"Host": target.netloc.decode("ascii"), "User-Agent": user_agent}
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(
        timeout=timeout_seconds, follow_redirects=False, trust_env=False
    ) as http:
        return await http.post(pinned, data=dict(fields), headers=headers, extensions=extensions)
