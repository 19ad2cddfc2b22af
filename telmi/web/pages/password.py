"""Passwords: the one-time link's page (« Choisir votre mot de passe »), « Mot de passe
oublié ? » and « Mon compte » (change one's own password)."""

from __future__ import annotations

from aiohttp import web

from telmi import account_links, accounts
from telmi.account_links import LinkUnusable, NewPassword, PasswordChange
from telmi.errors import ValidationError
from telmi.keys import DB, SETTINGS, WEB_SESSION
from telmi.values import parse
from telmi.web.access import authenticated, current_user, public, request_context
from telmi.web.http import session_policy
from telmi.web.middlewares import SESSION_COOKIE
from telmi.web.pages import forms
from telmi.web.render import render

PASSWORD_FIELDS = ("password", "confirm")


def _token(value: object) -> str:
    """The link's token (in the fragment of the mailed link, which the page's script posts
    as `jeton`, then a hidden field); a value no token can be is an unusable link."""
    if isinstance(value, str) and 20 <= len(value) <= 100:
        return value
    raise LinkUnusable()


def _gone(request: web.Request) -> web.Response:
    return render(request, "password_link_gone.html", {"message": LinkUnusable.message}, status=410)


@public
async def link_landing(request: web.Request) -> web.Response:
    """The mailed link's page: its script posts the fragment's token to `link_form` (a token
    in a URL's path or query would reach proxies' logs and Referer headers)."""
    return render(request, "password_link_open.html")


@public
async def link_form(request: web.Request) -> web.Response:
    ctx = request_context(request)
    form = await forms.read(request)
    try:
        token = _token(form.get("jeton"))
        async with request.app[DB].read() as session:
            link, user = await account_links.usable_link(session, token, now=ctx.now)
    except LinkUnusable:
        return _gone(request)
    return render(
        request,
        "password_link.html",
        {"purpose": link.purpose, "email": user.email, "token": token, "errors": {}},
    )


@public
async def link_submit(request: web.Request) -> web.StreamResponse:
    form = await forms.read(request)
    ctx, settings = request_context(request), request.app[SETTINGS]
    data = {name: str(form.get(name, "")) for name in PASSWORD_FIELDS}
    try:
        token = _token(form.get("jeton"))
        new = parse(NewPassword, data, strict=False)
        async with request.app[DB].write() as session:
            user = await account_links.use_link(session, ctx, token, new)
            cookie = await accounts.open_session(
                session,
                ctx,
                user,
                policy=session_policy(settings),
                user_agent=request.headers.get("User-Agent", ""),
            )
    except LinkUnusable:
        return _gone(request)
    except ValidationError as exc:
        async with request.app[DB].read() as session:
            try:
                link, user = await account_links.usable_link(session, token, now=ctx.now)
            except LinkUnusable:
                return _gone(request)
        context = {
            "purpose": link.purpose,
            "email": user.email,
            "token": token,
            "errors": {exc.field or "password": exc.message},
        }
        return render(request, "password_link.html", context, status=422)
    response = web.HTTPSeeOther("/")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies,
        path="/",
        max_age=settings.session_max_hours * 3600,
    )
    raise response


@public
async def forgot_form(request: web.Request) -> web.Response:
    return render(request, "password_forgot.html", {"email": "", "done": False})


@public
async def forgot_submit(request: web.Request) -> web.Response:
    form = await forms.read(request)
    email = forms.text(form, "email")
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    async with request.app[DB].write() as session:
        await account_links.forgot_password(session, ctx, email, public_url=public_url)
    return render(request, "password_forgot.html", {"email": "", "done": True})


@authenticated
async def my_account(request: web.Request) -> web.Response:
    context = {"me": current_user(request), "errors": {}, "done": "ok" in request.query}
    return render(request, "my_account.html", context)


@authenticated
async def change_password(request: web.Request) -> web.StreamResponse:
    form = await forms.read(request)
    ctx = request_context(request)
    data = {name: str(form.get(name, "")) for name in (*PASSWORD_FIELDS, "current_password")}
    web_session = request[WEB_SESSION]
    keep = web_session.id if web_session is not None else None
    try:
        change = parse(PasswordChange, data, strict=False)
        async with request.app[DB].write() as session:
            await account_links.change_password(session, ctx, change, keep_session=keep)
    except ValidationError as exc:
        context = {
            "me": current_user(request),
            "errors": {exc.field or "password": exc.message},
            "done": False,
        }
        return render(request, "my_account.html", context, status=422)
    raise web.HTTPSeeOther(request.app.router["my_account"].url_for().with_query({"ok": "1"}))
