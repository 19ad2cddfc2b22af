"""Errors, authentication, authorisation, CSRF and security headers: once, for every request."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource
from yarl import URL

from telmi import accounts
from telmi.context import Context
from telmi.errors import (
    AuthenticationRequired,
    CsrfFailed,
    Forbidden,
    TelmiError,
    Throttled,
)
from telmi.keys import AUTH_METHOD, CLOCK, CONTEXT, DB, SETTINGS, USER, WEB_SESSION
from telmi.web import csrf
from telmi.web.access import Handler, access_of
from telmi.web.http import client_address, error_json, is_api, session_policy
from telmi.web.render import count_unread, render

log = logging.getLogger("telmi.web")

SESSION_COOKIE = "telmi_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_HTTP_CODES = {
    400: ("bad_request", "Requête invalide."),
    401: ("unauthenticated", "Authentification requise."),
    403: ("forbidden", "Accès refusé."),
    404: ("not_found", "Page ou ressource introuvable."),
    405: ("method_not_allowed", "Méthode non autorisée pour cette adresse."),
    413: ("body_too_large", "Le contenu envoyé est trop volumineux."),
    415: ("unsupported_media_type", "Type de contenu non pris en charge."),
}

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def _error_page(
    request: web.Request, status: int, code: str, message: str, headers: dict[str, str] | None
) -> web.Response:
    response = render(
        request, "error.html", {"status": status, "code": code, "message": message}, status=status
    )
    if headers:
        response.headers.update(headers)
    return response


def _render_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> web.Response:
    if is_api(request):
        return error_json(status, code, message, field=field, headers=headers)
    return _error_page(request, status, code, message, headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes `{"error": {code, message}}` under /api/ and a French page elsewhere."""
    try:
        return await handler(request)
    except Throttled as exc:
        return _render_error(
            request, exc.status, exc.code, exc.message, {"Retry-After": str(exc.retry_after)}
        )
    except TelmiError as exc:
        return _render_error(request, exc.status, exc.code, exc.message, field=exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(
            exc.status, ("http_error", "La demande n'a pas pu aboutir.")
        )
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _render_error(request, exc.status, code, message, headers)
    except Exception:
        # The path only: query strings and bodies may carry data that must not reach logs.
        context = request.get(CONTEXT)
        log.exception(
            "unhandled error on %s %s (request %s)",
            request.method,
            request.path,
            context.request_id if context else "-",
        )
        return _render_error(
            request, 500, "internal_error", "Erreur interne. L'incident a été journalisé."
        )


async def _identify(request: web.Request, now: datetime) -> None:
    """Attach the user behind a bearer token or a session cookie, if any."""
    request[USER] = None
    request[WEB_SESSION] = None
    request[AUTH_METHOD] = None
    app = request.app
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, raw = authorization.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise AuthenticationRequired(
                "En-tête Authorization invalide (attendu : Bearer <jeton>)."
            )
        user = await accounts.token_user(app[DB].connection, raw.strip(), now=now)
        if user is None:
            raise AuthenticationRequired(
                "Jeton d'API invalide, expiré ou révoqué.", code="invalid_token"
            )
        request[USER] = user
        request[AUTH_METHOD] = "token"
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return
    async with app[DB].connection() as conn:
        found = await accounts.resolve_session(
            conn, cookie, now=now, policy=session_policy(app[SETTINGS])
        )
    if found is None:
        return
    web_session, user = found
    if accounts.session_needs_touch(web_session, now):
        async with app[DB].write() as session:
            await accounts.touch_session(session, web_session.id, now)
    request[USER] = user
    request[WEB_SESSION] = web_session
    request[AUTH_METHOD] = "session"


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _request_id(request: web.Request) -> str:
    """The proxy's X-Request-Id when it is trusted and well-formed, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    if request.app[SETTINGS].trust_proxy and _REQUEST_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


def _route_access(request: web.Request) -> Any:
    route = request.match_info.route
    if isinstance(route.resource, StaticResource) or request.match_info.http_exception:
        return None
    access = access_of(route.handler)
    if access is None:
        raise RuntimeError(f"route {route.resource} declares no access rule")
    return access


def _login_url(request: web.Request) -> URL:
    """The login page, then back where the user was. A form sent after the session expired
    goes back to the page that showed it (the path of its Referer), where the
    browser gives back what was typed (static/js/forms.js); a stale session cookie is what
    says the session expired rather than never was."""
    back = request.path
    if request.method not in SAFE_METHODS:
        referer = URL(request.headers.get("Referer", ""))
        back = referer.path if referer.is_absolute() else "/"  # a path: never off-site
    query = {"next": back}
    if request.cookies.get(SESSION_COOKIE):
        query["expiree"] = "1"
    return request.app.router["login"].url_for().with_query(query)


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = _route_access(request)
    if access is None:  # static files and router errors (404, 405)
        return await handler(request)
    now = request.app[CLOCK].now()  # the request's one instant
    await _identify(request, now)
    user = request[USER]
    request[CONTEXT] = Context(
        user=user, now=now, address=client_address(request), request_id=_request_id(request)
    )
    if not access.public:
        if user is None:
            if is_api(request):
                raise AuthenticationRequired()
            raise web.HTTPSeeOther(_login_url(request))
        if access.roles is not None and user.role not in access.roles:
            raise Forbidden()
    # Bearer requests carry no ambient authority; cookie-borne and anonymous form posts do.
    if request.method not in SAFE_METHODS and request[AUTH_METHOD] != "token":
        if not await csrf.is_valid(request):
            raise CsrfFailed()
    await count_unread(request)  # the menu's badge: one COUNT, signed-in GET pages only
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.app[SETTINGS].secure_cookies:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.get(USER) is not None or is_api(request):
        headers.setdefault("Cache-Control", "no-store")
    context = request.get(CONTEXT)
    if context is not None:
        headers.setdefault("X-Request-Id", context.request_id)
