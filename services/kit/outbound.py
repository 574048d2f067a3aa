"""Which URLs an agency may make Switchboard fetch, and the one way to fetch them.

Agencies register URLs that the server itself calls (today: back-channel logout URIs). Such a
URL could aim the server at itself or at the private network it runs in (server-side request
forgery). The rule is written here once, and every door (the API, the portal's apps console,
the tasks that send) goes through it:

* **at registration** (`check_url`): an absolute https URL without spaces, fragment, user name
  or password; a host given as an IP address must be a public one. Outside production (and
  in production only with `SWITCHBOARD_OUTBOUND_ALLOW_PRIVATE=true`) loopback and private
  addresses are accepted, and http is accepted for loopback hosts, as for redirect URIs;
* **at fetch time** (`request`, `post_form`): the URL is checked again, its host name is
  resolved and every address it resolves to must be allowed; the request is sent to the
  address that was checked (the name is not resolved a second time, so DNS rebinding cannot
  swap it) with the original Host header and TLS server name. Redirects are followed only
  when the caller asks (`max_redirects`), and every hop is checked like the first; the
  caller's `Authorization` header never follows a redirect to another origin. A response
  body larger than `max_bytes` is refused while it streams.

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


REDIRECTS = (301, 302, 303, 307, 308)
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class TooLarge(Refused):
    """The response body grew past the caller's `max_bytes`."""


async def post_form(
    url: str, fields: Mapping[str, str], *, timeout_seconds: float, user_agent: str = "Switchboard"
) -> httpx.Response:
    """POST `fields` as application/x-www-form-urlencoded to an agency-registered URL, under
    the rule above, following no redirect. Raises `Refused` for a URL that may not be
    fetched, `httpx.HTTPError` for network failures and timeouts."""
    return await request(
        "POST", url, data=dict(fields), timeout_seconds=timeout_seconds, user_agent=user_agent
    )


async def request(
    method: str,
    url: str,
    *,
    timeout_seconds: float,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    content: bytes | None = None,
    max_redirects: int = 0,
    max_bytes: int = MAX_RESPONSE_BYTES,
    user_agent: str = "Switchboard",
) -> httpx.Response:
    """Send one request to a URL a tenant supplied, under the rule above (every redirect hop
    included). The response is read in full (at most `max_bytes`). Raises `Refused` (a URL or
    a redirect that may not be fetched, `TooLarge`) or `httpx.HTTPError` (network failures,
    timeouts, too many redirects)."""
    current = httpx.URL(url)
    if params:
        current = current.copy_merge_params(dict(params))
    body: dict[str, object] = {"data": dict(data)} if data is not None else {}
    if content is not None:
        body = {"content": content}
    sent_headers = dict(headers or {})
    origin = (current.scheme, current.host, current.port)
    async with httpx.AsyncClient(
        timeout=timeout_seconds, follow_redirects=False, trust_env=False
    ) as http:
        for hop in range(max_redirects + 1):
            response = await _send_pinned(
                http, method, current, sent_headers, body, max_bytes, user_agent
            )
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or location is None:
                return response
            if hop == max_redirects:
                if max_redirects == 0:
                    return response  # the caller follows nothing: it sees the redirect
                raise httpx.TooManyRedirects(
                    f"more than {max_redirects} redirects", request=response.request
                )
            current = current.join(location)
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, body = "GET", {}  # as browsers and httpx do
            if (current.scheme, current.host, current.port) != origin:
                sent_headers = {
                    k: v for k, v in sent_headers.items() if k.lower() != "authorization"
                }
    raise AssertionError("unreachable")  # the loop returns or raises


async def _send_pinned(
    http: httpx.AsyncClient,
    method: str,
    target: httpx.URL,
    headers: Mapping[str, str],
    body: Mapping[str, object],
    max_bytes: int,
    user_agent: str,
) -> httpx.Response:
    check_url(str(target))
    host = target.host
    port = target.port or (443 if target.scheme == "https" else 80)
    address = await _checked_address(host, port)
    pinned = target.copy_with(host=address)
    sent = {
        "User-Agent": user_agent,
        **{k: v for k, v in headers.items() if k.lower() != "host"},
        "Host": target.netloc.decode("ascii"),
    }
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    outgoing = http.build_request(method, pinned, headers=sent, extensions=extensions, **body)  # type: ignore[arg-type]
    response = await http.send(outgoing, stream=True)
    try:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts in full
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"the response from {host} is larger than {max_bytes} bytes")
            chunks.append(chunk)
    finally:
        await response.aclose()
    kept = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=kept,
        content=b"".join(chunks),
        request=httpx.Request(method, target, headers=sent),
        extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
    )
