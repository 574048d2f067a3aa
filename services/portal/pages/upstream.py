"""Upstream sign-in routes of the portal ("Continue with Google / Microsoft") and the agency's
settings page for them. The protocol and the rules are in `services.identity.upstream`.

* `GET /login/upstream/{provider}`: a plain link from the sign-in page (a form would be
  stopped by the CSP's `form-action 'self'` on its way to the provider). Sets `sb_upstream`,
  the sealed state (HttpOnly, SameSite=Lax so that it comes back with the provider's
  top-level redirect, path `/a/{slug}/login/upstream/`, ten minutes), bound to the browser's
  CSRF cookie, and redirects to the provider.
* `GET /login/upstream/{provider}/callback`: every answer drops `sb_upstream` (one try per
  state). Success continues like a password sign-in (`flow.after_sign_in`: the second
  factor when the person has one). A refusal is an error page, returned (not raised) so its
  audit event and throttle counters commit.
* `GET /settings/sign-in`, `POST /settings/sign-in/{provider}`,
  `POST /settings/sign-in/{provider}/remove`: agency managers (agency:manage).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from services.identity import upstream
from services.identity.upstream_oidc import LABELS, MICROSOFT, UpstreamError
from services.kit.errors import NotFound, TooManyAttempts, ValidationFailed
from services.kit.web import DBSession
from services.portal import flow, forms, security
from services.portal import service as portal
from services.portal.auth import (
    AgencyManage,
    CsrfChecked,
    MaybeSignedIn,
    PortalAgency,
    PublicAgency,
)
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute
from services.settings import get_settings

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

STATE_COOKIE = "sb_upstream"


def _state_path(slug: str) -> str:
    return f"/a/{slug}/login/upstream/"


def _binding(request: Request, slug: str) -> str:
    """The browser's CSRF cookie (made now, if it has none yet)."""
    security.csrf_token(request, slug)
    fresh = getattr(request.state, "csrf_new", None)
    return fresh or request.cookies.get(security.CSRF_COOKIE, "")


def _drop_state(response: Response, slug: str) -> Response:
    response.delete_cookie(
        STATE_COOKIE,
        path=_state_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )
    return response


def _provider(provider: str) -> str:
    if provider not in upstream.PROVIDERS:
        raise NotFound("no such sign-in provider")
    return provider


# ---- sign-in ----------------------------------------------------------------------------------


@router.get("/login/upstream/{provider}", name="portal_upstream_start")
async def start(
    request: Request,
    provider: str,
    agency: PublicAgency,
    principal: MaybeSignedIn,
    session: DBSession,
    next: str = "",
) -> Response:
    _provider(provider)
    target = security.safe_next(next[:2000], agency.slug)
    if principal is not None:
        return RedirectResponse(
            target or portal.landing(principal, f"/a/{agency.slug}"), status_code=303
        )
    try:
        begun = await upstream.begin(
            session,
            agency,
            provider,
            binding=_binding(request, agency.slug),
            next_url=target,
        )
    except UpstreamError:
        return _refused(
            request,
            agency.slug,
            f"{LABELS[provider]} could not be reached. Try again in a moment.",
            502,
        )
    response = RedirectResponse(begun.url, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        begun.state,
        max_age=int(upstream.STATE_TTL.total_seconds()),
        path=_state_path(agency.slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )
    security.remember_csrf_cookie(request, response, agency.slug)
    return response


def _refused(request: Request, slug: str, message: str, status: int) -> Response:
    response = page(
        request,
        "upstream_error.html",
        {"title": "You are not signed in", "message": message, "status": status},
        status=status,
    )
    return _drop_state(response, slug)


@router.get("/login/upstream/{provider}/callback", name="portal_upstream_callback")
async def callback(
    request: Request, provider: str, agency: PublicAgency, session: DBSession
) -> Response:
    _provider(provider)
    params = {k: v[:4096] for k, v in request.query_params.items()}
    try:
        done = await upstream.complete(
            session,
            agency,
            provider,
            params=params,
            sealed_state=request.cookies.get(STATE_COOKIE, "")[:2000],
            binding=request.cookies.get(security.CSRF_COOKIE, ""),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    except upstream.UpstreamRefused as exc:
        return _refused(request, agency.slug, exc.message, exc.status)
    except TooManyAttempts as exc:
        return _refused(
            request,
            agency.slug,
            f"Too many failed sign-ins. For your security, {exc.detail.split('; ')[-1]}.",
            429,
        )
    response = await flow.after_sign_in(
        session,
        agency,
        done.user,
        done.token,
        done.next,
        previous=security.session_cookie(request),
    )
    return _drop_state(response, agency.slug)


# ---- settings ---------------------------------------------------------------------------------


def _values(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in upstream.PROVIDERS:
        row = rows.get(p)
        out[p] = {
            "configured": row is not None,
            "client_id": row.client_id if row else "",
            "tenant": (row.tenant or "common") if row else "common",
            "enabled": row.enabled if row else True,
            "updated_at": row.updated_at if row else None,
        }
    return out


async def _settings_page(
    request: Request,
    session: DBSession,
    agency: Any,
    *,
    values: dict[str, dict[str, Any]] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    current = _values(await upstream.configs(session))
    return page(
        request,
        "sign_in_settings.html",
        {
            "nav": "sign_in",
            "providers": upstream.PROVIDERS,
            "labels": LABELS,
            "current": current,
            "values": values or current,
            "errors": errors or {},
            "redirect_uris": {p: upstream.redirect_uri(agency.slug, p) for p in upstream.PROVIDERS},
        },
        status=status,
    )


@router.get("/settings/sign-in", name="portal_sign_in_settings")
async def sign_in_settings(
    request: Request, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    return await _settings_page(request, session, agency)


@router.post("/settings/sign-in/{provider}", name="portal_sign_in_save", dependencies=[CsrfChecked])
async def save(
    request: Request,
    provider: str,
    agency: PortalAgency,
    principal: AgencyManage,
    session: DBSession,
) -> Response:
    _provider(provider)
    form = await request.form()
    secret = form.get("client_secret")
    client_id = forms._text(form, "client_id")[:300]
    tenant = forms._text(form, "tenant")[:100] or "common"
    enabled = form.get("enabled") == "on"
    submitted = {"configured": True, "client_id": client_id, "tenant": tenant, "enabled": enabled}
    try:
        await upstream.save_config(
            session,
            agency.id,
            provider,
            client_id=client_id,
            client_secret=secret if isinstance(secret, str) else None,
            tenant=tenant if provider == MICROSOFT else None,
            enabled=enabled,
        )
    except ValidationFailed as exc:
        current = _values(await upstream.configs(session))
        raise FormRejected(
            await _settings_page(
                request,
                session,
                agency,
                values={**current, provider: {**current[provider], **submitted}},
                errors={provider: forms.error_of(exc, "client_id")},
                status=422,
            )
        ) from None
    response = RedirectResponse(f"/a/{agency.slug}/settings/sign-in#{provider}", status_code=303)
    security.set_flash(response, agency.slug, "sign_in_provider_saved")
    return response


@router.post(
    "/settings/sign-in/{provider}/remove",
    name="portal_sign_in_remove",
    dependencies=[CsrfChecked],
)
async def remove(
    provider: str, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    _provider(provider)
    await upstream.delete_config(session, provider)
    response = RedirectResponse(f"/a/{agency.slug}/settings/sign-in", status_code=303)
    security.set_flash(response, agency.slug, "sign_in_provider_removed")
    return response
