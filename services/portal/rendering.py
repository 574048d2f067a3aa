"""Templates, the agency's brand, and HTML responses (pages, partials, error pages)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import phonenumbers
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from services.kit import ids
from services.portal import security
from services.portal.labels import ROLE_LABELS, STAGE_ACTIONS, STAGE_LABELS
from services.settings import get_settings
from tenants.models import Agency, LifecycleStage
from tenants.principal import Principal
from tenants.roles import CLIENT_ROLES, Permission

HERE = Path(__file__).resolve().parent

# ---- the agency's brand ------------------------------------------------------------------


def _luminance(hex_color: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _on(hex_color: str) -> str:
    """Readable text colour on a background (WCAG contrast: white or near-black)."""
    lum = _luminance(hex_color)
    return "#ffffff" if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) else "#0f172a"


def _hex(value: str | None, default: str) -> str:
    v = (value or "").lower()
    return (
        v
        if len(v) == 7 and v.startswith("#") and all(c in "0123456789abcdef" for c in v[1:])
        else default
    )


@dataclass(frozen=True)
class Brand:
    """A snapshot of an agency's white-label settings (safe to use after a rollback)."""

    slug: str
    name: str
    logo_url: str | None
    primary: str
    accent: str
    support_email: str | None

    @classmethod
    def of(cls, agency: Agency) -> Brand:
        return cls(
            slug=agency.slug,
            name=agency.name,
            logo_url=agency.brand_logo_url,
            primary=_hex(agency.brand_primary_color, "#2563eb"),
            accent=_hex(agency.brand_accent_color, "#0f172a"),
            support_email=agency.support_email,
        )

    @property
    def base(self) -> str:
        return f"/a/{self.slug}"

    @property
    def initial(self) -> str:
        return (self.name.strip()[:1] or "?").upper()

    @property
    def on_primary(self) -> str:
        return _on(self.primary)

    @property
    def on_accent(self) -> str:
        return _on(self.accent)

    def css(self) -> str:
        return (
            f":root{{--brand:{self.primary};--brand-contrast:{self.on_primary};"
            f"--accent:{self.accent};--accent-contrast:{self.on_accent};}}"
        )


NEUTRAL = Brand("", "Switchboard", None, "#2563eb", "#0f172a", None)


# ---- template environment ------------------------------------------------------------------


@cache
def _static_version(path: str) -> str:
    try:
        data = (get_settings().static_dir / path).read_bytes()
    except OSError:
        return "0"
    return hashlib.sha256(data).hexdigest()[:10]


def static_url(path: str) -> str:
    return f"/static/{path}?v={_static_version(path)}"


@cache
def _icon_svg(name: str) -> str:
    try:
        raw = (get_settings().static_dir / "vendor" / "icons" / f"{name}.svg").read_text()
    except OSError:
        return ""
    start = raw.find("<svg")
    return raw[start:].strip() if start >= 0 else ""


def icon(name: str, cls: str = "") -> Markup:
    svg = _icon_svg(name)
    if not svg:
        return Markup('<span class="icon" aria-hidden="true"></span>')
    classes = f"icon {cls}".strip()
    svg = svg.replace("<svg", f'<svg aria-hidden="true" focusable="false" data-icon="{name}"', 1)
    svg = svg.replace(f'class="lucide lucide-{name}"', f'class="{classes}"', 1)
    return Markup(svg)  # noqa: S704  (files we vendored ourselves)


def _dt(value: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(fmt) + (" UTC" if "%H" in fmt else "")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            if unit == "day" and n > 30:
                return value.strftime("%d %b %Y")
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _phone(value: str | None) -> str:
    """E.164 as stored, shown the international way (+33 1 42 68 53 00)."""
    if not value:
        return ""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _initials(name: str) -> str:
    parts = [p for p in name.replace("@", " ").replace(".", " ").split() if p]
    return ("".join(p[0] for p in parts[:2]) or "?").upper()


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        icon=icon,
        static=static_url,
        STAGES=list(LifecycleStage),
        STAGE_LABELS=STAGE_LABELS,
        STAGE_ACTIONS=STAGE_ACTIONS,
        ROLE_LABELS=ROLE_LABELS,
        CLIENT_ROLES=CLIENT_ROLES,
        Permission=Permission,
    )
    env.filters.update(dt=_dt, ago=_ago, initials=_initials, phone=_phone, public_id=ids.encode)
    return env


# ---- responses ---------------------------------------------------------------------------------


def render_string(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    brand: Brand | None = None,
) -> HTMLResponse:
    """A full page (or an htmx partial) in the agency's brand, with CSRF token and headers."""
    brand = brand or getattr(request.state, "portal_brand", None) or NEUTRAL
    principal: Principal | None = getattr(request.state, "portal_principal", None)
    nonce = security.new_nonce()
    flash = security.take_flash(request)
    ctx: dict[str, Any] = {
        "brand": brand,
        "base": brand.base,
        "principal": principal,
        "viewer": getattr(request.state, "portal_viewer", None),
        "can": (lambda p: principal is not None and principal.can(p)),
        "csrf_token": security.csrf_token(request, brand.slug) if brand.slug else "",
        "csrf_field": security.CSRF_FIELD,
        "flash": flash,
        "nonce": nonce,
        "request_id": getattr(request.state, "request_id", ""),
        "path": request.url.path,
        "nav": "",
        "home_url": getattr(request.state, "portal_home", brand.base + "/clients"),
        "clients_url": getattr(request.state, "portal_clients", brand.base + "/clients"),
    }
    ctx.update(context or {})
    response = HTMLResponse(render_string(template, **ctx), status_code=status)
    if brand.slug:
        security.remember_csrf_cookie(request, response, brand.slug)
        if flash is not None:
            security.clear_flash(request, response, brand.slug)
    security.security_headers(response, nonce)
    return response


ERRORS = {
    400: ("Bad request", "That request could not be understood. Go back and try again."),
    403: ("Not allowed", "Your account does not have access to this page or action."),
    404: ("Page not found", "This page does not exist, or it is not available to your account."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    409: ("Conflict", "That change conflicts with the current state. Reload and try again."),
    413: ("Too large", "What you sent is larger than we accept."),
    500: (
        "Something went wrong",
        "An unexpected error happened on our side. It has been logged; please try again.",
    ),
}


def error_page(
    request: Request, status: int, *, title: str | None = None, message: str | None = None
) -> HTMLResponse:
    default_title, default_message = ERRORS.get(status, ERRORS[400 if status < 500 else 500])
    return page(
        request,
        "error.html",
        {"status": status, "title": title or default_title, "message": message or default_message},
        status=status,
    )
