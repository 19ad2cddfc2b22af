"""Administration of accounts: invite by e-mail, edit role and facility or specialty,
disable and enable, send a password-reset link."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from telmi import account_links, facilities
from telmi.account_links import Invitation, UserEdit
from telmi.accounts import USERS, users_page
from telmi.errors import TelmiError
from telmi.keys import DB, SETTINGS
from telmi.models import Role, User
from telmi.values import parse
from telmi.web.access import current_user, request_context, roles
from telmi.web.http import path_id
from telmi.web.listing import PARAM, page_after, page_links
from telmi.web.pages import forms
from telmi.web.render import render

INVITE_FIELDS = ("email", "full_name", "role", "facility", "specialty", "rpps")
EDIT_FIELDS = ("role", "facility", "specialty")
DONE = {
    "invitation": "Invitation envoyée par e-mail.",
    "modifie": "Compte modifié.",
    "desactive": "Compte désactivé : ses sessions et jetons sont révoqués.",
    "active": "Compte réactivé.",
    "lien": "Lien de réinitialisation envoyé par e-mail.",
}


def _values(form: forms.Form, names: tuple[str, ...]) -> dict[str, str]:
    return {name: forms.text(form, name) for name in names}


def _body(values: dict[str, str]) -> dict[str, Any]:
    """Blank optional fields are absent ones."""
    return {name: value for name, value in values.items() if value}


async def _choices(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as session:
        return {
            "facilities": await facilities.list_facilities(session, current_user(request)),
            "specialties": await facilities.list_specialties(session),
            "roles": list(Role),
        }


def _here(request: web.Request) -> URL:
    """The list's own address, with its cursor: a refused invitation is shown on it again."""
    url = request.app.router["accounts_admin"].url_for()
    cursor = request.query.get(PARAM)
    return url.with_query({PARAM: cursor}) if cursor else url


async def _list(
    request: web.Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.Response:
    after = page_after(request, USERS)
    async with request.app[DB].read() as session:
        users = await users_page(session, after=after)
    context = {
        "users": users.items,
        **page_links(request, USERS, users, base=_here(request)),
        "status_of": account_links.status_of,
        "values": values,
        "errors": errors,
        "done": DONE.get(request.query.get("ok", "")),
        **await _choices(request),
    }
    return render(request, "accounts_admin.html", context, status=status)


def _done(request: web.Request, name: str, key: str, **parts: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(request.app.router[name].url_for(**parts).with_query({"ok": key}))


@roles(Role.ADMIN)
async def accounts(request: web.Request) -> web.Response:
    return await _list(request, {"role": "staff"}, {})


@roles(Role.ADMIN)
async def invite(request: web.Request) -> web.StreamResponse:
    values = _values(await forms.read(request), INVITE_FIELDS)
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    try:
        new = parse(Invitation, _body(values), strict=False)
        async with request.app[DB].write() as session:
            await account_links.invite(session, ctx, new, public_url=public_url)
    except TelmiError as exc:
        return await _list(request, values, {exc.field or "form": exc.message}, exc.status)
    raise _done(request, "accounts_admin", "invitation")


async def _user(request: web.Request) -> User:
    async with request.app[DB].read() as session:
        return await account_links.get_user(session, path_id(request, "user_id"))


async def _edit_page(
    request: web.Request,
    user: User,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> web.Response:
    async with request.app[DB].read() as session:
        tokens = await account_links.active_tokens(session, user.id)
    context = {
        "target": user,
        "state": account_links.status_of(user),
        "tokens": tokens,
        "values": values,
        "errors": errors,
        "done": DONE.get(request.query.get("ok", "")),
        **await _choices(request),
    }
    return render(request, "account_edit.html", context, status=status)


@roles(Role.ADMIN)
async def edit(request: web.Request) -> web.Response:
    user = await _user(request)
    values = {
        "role": user.role.value,
        "facility": user.facility.finess if user.facility else "",
        "specialty": user.specialty.code if user.specialty else "",
    }
    return await _edit_page(request, user, values, {})


@roles(Role.ADMIN)
async def save(request: web.Request) -> web.StreamResponse:
    user = await _user(request)
    values = _values(await forms.read(request), EDIT_FIELDS)
    ctx = request_context(request)
    try:
        change = parse(UserEdit, _body(values), strict=False)
        async with request.app[DB].write() as session:
            await account_links.update_user(session, ctx, user.id, change)
    except TelmiError as exc:
        return await _edit_page(
            request, user, values, {exc.field or "form": exc.message}, exc.status
        )
    raise _done(request, "account_edit", "modifie", user_id=str(user.id))


async def _action(request: web.Request, key: str) -> web.StreamResponse:
    user_id = path_id(request, "user_id")
    ctx, public_url = request_context(request), request.app[SETTINGS].public_url
    async with request.app[DB].write() as session:
        if key == "desactive":
            await account_links.disable(session, ctx, user_id)
        elif key == "active":
            await account_links.enable(session, ctx, user_id)
        else:
            await account_links.send_reset(session, ctx, user_id, public_url=public_url)
    raise _done(request, "account_edit", key, user_id=str(user_id))


@roles(Role.ADMIN)
async def disable(request: web.Request) -> web.StreamResponse:
    return await _action(request, "desactive")


@roles(Role.ADMIN)
async def enable(request: web.Request) -> web.StreamResponse:
    return await _action(request, "active")


@roles(Role.ADMIN)
async def send_reset(request: web.Request) -> web.StreamResponse:
    return await _action(request, "lien")
