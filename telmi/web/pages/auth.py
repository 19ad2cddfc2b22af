"""Login and logout pages."""

from __future__ import annotations

from aiohttp import web

from telmi import accounts
from telmi.keys import DB, SETTINGS, USER, WEB_SESSION
from telmi.web.access import authenticated, public, request_context
from telmi.web.http import login_policy, session_policy
from telmi.web.middlewares import SESSION_COOKIE
from telmi.web.pages import forms
from telmi.web.render import render


def _safe_next(value: str | None) -> str:
    """Only same-site paths, so the login form cannot become an open redirect. Checked on
    the raw value: browsers drop tabs and line breaks from a URL, so `/<TAB>/evil.example`
    would become `//evil.example` after the check; any control character or space is out."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and all(" " < c != "\x7f" for c in value)
    ):
        return value
    return "/"


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    if request[USER] is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    context = {
        "next": _safe_next(request.query.get("next")),
        "email": "",
        "expired": request.query.get("expiree") == "1",
    }
    return render(request, "login.html", context)


@public
async def login(request: web.Request) -> web.StreamResponse:
    form = await forms.read(request)
    email = str(form.get("email", ""))
    password = str(form.get("password", ""))
    next_path = _safe_next(str(form.get("next", "")))
    settings = request.app[SETTINGS]
    ctx = request_context(request)
    async with request.app[DB].write() as session:
        user = await accounts.authenticate(
            session, ctx, email, password, policy=login_policy(settings)
        )
        token = None
        if user is not None:
            if (previous := request[WEB_SESSION]) is not None:
                await accounts.revoke_session(session, previous.id, now=ctx.now)
            token = await accounts.open_session(
                session,
                ctx,
                user,
                policy=session_policy(settings),
                user_agent=request.headers.get("User-Agent", ""),
            )
    if token is None:
        return render(
            request,
            "login.html",
            {
                "next": next_path,
                "email": email,
                "error": "Adresse e-mail ou mot de passe incorrect.",
            },
            status=401,
        )
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies,
        path="/",
        max_age=settings.session_max_hours * 3600,
    )
    raise response


@authenticated
async def logout(request: web.Request) -> web.StreamResponse:
    if (web_session := request[WEB_SESSION]) is not None:
        async with request.app[DB].write() as session:
            await accounts.revoke_session(session, web_session.id, now=request_context(request).now)
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
