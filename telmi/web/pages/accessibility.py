"""« Déclaration d'accessibilité » (RGAA 4.1, on the model of numerique.gouv.fr) and its
feedback form.

Public: anyone may read it and write to the administrators, signed in or not (CSRF through
the pre-session cookie, like the login form). A message goes to the active administrators
through the notification outbox (`notify.alert_admins`); its text is never logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import date

from aiohttp import web

from telmi import notify
from telmi.keys import DB, SETTINGS, USER
from telmi.labels import day_month
from telmi.web.access import public, request_context
from telmi.web.pages import forms
from telmi.web.render import render

log = logging.getLogger(__name__)

# When the statement was drawn up (the date of the self-assessment), not today's date: it
# changes when the statement is revised, by hand.
ESTABLISHED = date(2026, 12, 2)
OPERATOR = "l'opérateur régional de Telmi"
MESSAGE_LIMIT, EMAIL_LIMIT, PAGE_LIMIT = 2000, 254, 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
THANKS = "Merci, votre message a été transmis à l'équipe qui administre Telmi."
FIELDS = ("message", "email", "page")


def _errors(values: dict[str, str]) -> dict[str, str]:
    """What is wrong with the form, field by field (French, for the page)."""
    errors = {}
    message = values["message"]
    if not message.strip():
        errors["message"] = "Écrivez votre message."
    elif len(message) > MESSAGE_LIMIT:
        errors["message"] = (
            f"Votre message fait {len(message)} caractères : {MESSAGE_LIMIT} au plus."
        )
    email = values["email"].strip()
    if email and (len(email) > EMAIL_LIMIT or not _EMAIL.match(email)):
        errors["email"] = "Cette adresse e-mail n'est pas valide (exemple : nom@exemple.fr)."
    if len(values["page"]) > PAGE_LIMIT:
        errors["page"] = f"{PAGE_LIMIT} caractères au plus."
    return errors


def _page(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "accessibility.html",
        {
            "operator_title": OPERATOR[0].upper() + OPERATOR[1:],
            "established": day_month(ESTABLISHED),
            "site_url": request.app[SETTINGS].public_url,
            "values": values,
            "errors": errors,
            "limits": {"message": MESSAGE_LIMIT, "email": EMAIL_LIMIT, "page": PAGE_LIMIT},
            "thanks": THANKS if request.query.get("ok") == "merci" else None,
        },
        status=status,
    )


@public
async def statement(request: web.Request) -> web.Response:
    return _page(request, {name: "" for name in FIELDS}, {})


@public
async def feedback(request: web.Request) -> web.Response:
    form = await forms.read(request)
    values = {name: v if isinstance(v := form.get(name, ""), str) else "" for name in FIELDS}
    errors = _errors(values)
    if errors:
        return _page(request, values, errors, status=422)
    ctx = request_context(request)
    message, email, page = values["message"].strip(), values["email"].strip(), values["page"]
    user = request[USER]
    sender = f"{user.full_name} ({user.email}), connecté" if user else "un visiteur non connecté"
    body = (
        "Un message a été laissé depuis la déclaration d'accessibilité.\n\n"
        f"De : {sender}.\n"
        f"Adresse pour la réponse : {email or 'non indiquée'}.\n"
        f"Page concernée : {page.strip() or 'non indiquée'}.\n\n"
        f"{message}\n\n"
        "Si la personne ne peut pas accéder à un contenu, "
        "proposez-lui une alternative accessible ou l'information sous une autre forme."
    )
    who = f"u{user.id}" if user else f"a{ctx.address}"
    digest = hashlib.sha256(f"{who}\n{email}\n{page}\n{message}".encode()).hexdigest()[:24]
    key = f"accessibilite:{ctx.now.date().isoformat()}:{digest}"  # a double send counts once
    created = await request.app[DB].run_write(
        lambda s: notify.alert_admins(
            s,
            subject="Accessibilité : un retour d'utilisateur",
            body=body,
            key=key,
            now=ctx.now,
        )
    )
    log.info("accessibility feedback for %d administrators", created)  # never its text
    raise web.HTTPSeeOther(
        request.app.router["accessibility"]
        .url_for()
        .with_query(ok="merci")
        .with_fragment("contact")
    )
