"""CSRF tokens bound to the browser session (or, before login, to a pre-session cookie).

The token is an HMAC of the session id under the secret key, so nothing extra is stored and
a token from one session is worthless in another.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from telmi.keys import SETTINGS, WEB_SESSION

PRE_SESSION_COOKIE = "telmi_pre"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_NEW_PRE_SESSION = web.RequestKey("new_pre_session", str)


def _seed(request: web.Request) -> str | None:
    web_session = request.get(WEB_SESSION)
    if web_session is not None:
        return "s:" + web_session.id
    pre = request.get(_NEW_PRE_SESSION) or request.cookies.get(PRE_SESSION_COOKIE)
    return "p:" + pre if pre else None


def _sign(request: web.Request, seed: str) -> str:
    key = request.app[SETTINGS].secret_key.encode()
    return hmac.new(key, ("csrf|" + seed).encode(), "sha256").hexdigest()


def token_for(request: web.Request) -> str:
    """The token to embed in forms; sets up a pre-session cookie for anonymous visitors."""
    seed = _seed(request)
    if seed is None:
        request[_NEW_PRE_SESSION] = secrets.token_urlsafe(24)
        seed = _seed(request)
        assert seed is not None
    return _sign(request, seed)


def set_pre_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    pre = request.get(_NEW_PRE_SESSION)
    if pre:
        response.set_cookie(
            PRE_SESSION_COOKIE,
            pre,
            httponly=True,
            samesite="Lax",
            secure=request.app[SETTINGS].secure_cookies,
            path="/",
        )


async def is_valid(request: web.Request) -> bool:
    seed = _seed(request)
    if seed is None:
        return False
    sent = request.headers.get(HEADER)
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(FORM_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent, _sign(request, seed))
