"""How portal routes answer errors: as branded HTML pages, never problem+json.

`PortalRoute` wraps each portal handler *outside* the request's unit of work, so an exception
has already rolled the session back when it is turned into a page here:

* `LoginRequired`  → 303 to the sign-in page with a `next` back here (htmx: `HX-Redirect`)
* `FormRejected`   → the form page the handler rendered, with the user's values and errors
                      (the transaction is rolled back: nothing half-written stays)
* typed errors     → the 403 / 404 / 409 ... page; a tenant-scope bug or anything else → 500
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.kit.errors import NotFound, SwitchboardError, TenantScopeMissing
from services.portal import security
from services.portal.rendering import error_page

log = structlog.get_logger("switchboard.portal")


class LoginRequired(Exception):
    def __init__(self, slug: str, next_url: str | None) -> None:
        super().__init__("sign-in required")
        self.slug = slug
        self.next_url = next_url


class SecondFactorSetupRequired(LoginRequired):
    """The agency requires two-step sign-in and this person has not set it up yet: every
    page sends them to their account page until they do."""

    def __init__(self, slug: str) -> None:
        super().__init__(slug, None)
        self.url = f"/a/{slug}/account?required=1"


class FormRejected(Exception):
    """Carries the re-rendered form; raised so the unit of work rolls back."""

    def __init__(self, response: Response) -> None:
        super().__init__("form rejected")
        self.response = response


class PageGone(NotFound):
    """A 404 whose message is written for the person reading it (e.g. a used invitation)."""


class CsrfRejected(SwitchboardError):
    status, slug, title = 403, "csrf", "This form has expired"


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    url = getattr(exc, "url", None) or f"/a/{exc.slug}/login"
    if exc.next_url:
        url += "?" + urlencode({"next": exc.next_url})
    if request.headers.get("hx-request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    security.security_headers(response)
    return response


def _typed_error(request: Request, exc: SwitchboardError) -> Response:
    if isinstance(exc, TenantScopeMissing):
        log.error("tenancy.scope_missing", detail=exc.detail, path=request.url.path)
        return error_page(request, 500)
    if isinstance(exc, CsrfRejected):
        return error_page(
            request,
            403,
            title="This form has expired",
            message="For your security the form could not be accepted. Go back, reload the "
            "page and try again.",
        )
    if isinstance(exc, PageGone):
        return error_page(request, 404, title="Link no longer valid", message=exc.detail)
    if exc.status == 404:
        return error_page(request, 404)
    if exc.status in (403, 409, 400, 422):
        return error_page(request, exc.status, message=_sentence(exc.detail))
    return error_page(request, exc.status if 400 <= exc.status < 600 else 500)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class PortalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                return login_redirect(request, exc)
            except FormRejected as exc:
                response = exc.response
            except SwitchboardError as exc:
                return _typed_error(request, exc)
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code)
            except RequestValidationError:
                return error_page(request, 400)
            except Exception:
                log.exception("portal.unhandled", path=request.url.path)
                return error_page(request, 500)
            security.security_headers(response)
            return response

        return portal_handler


def install_not_found_page(app: FastAPI) -> None:
    """Addresses under /a/ that match no route: a 404 page for browsers, the API's
    problem+json for everyone else."""
    original = app.exception_handlers.get(StarletteHTTPException)

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if (
            request.url.path.startswith("/a/")
            and wants_html
            and exc.status_code in (404, 405)
            and (
                request.scope.get("route") is None
                or isinstance(request.scope.get("route"), PortalRoute)
            )
        ):
            return error_page(request, exc.status_code)
        if original is None:
            raise exc
        result = original(request, exc)
        return await result if isinstance(result, Awaitable) else result

    app.exception_handlers[StarletteHTTPException] = handler
