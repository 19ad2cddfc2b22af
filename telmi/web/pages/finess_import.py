"""« Importer un extrait FINESS »: upload, preview, apply (admins).

The file is sent as the raw request body by `static/js/finess-upload.js` with the CSRF token
in its header: a national extract is tens of megabytes, far above the form body limit, and a
multipart form would have to be read whole to find its CSRF field. It is kept under the data
directory by its SHA-256 until it is applied (or replaced), so the preview and the import read
the same bytes; the import plans again inside its transaction, against the database as it is.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from telmi import finess
from telmi.errors import TelmiError, ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import FinessImport, Role
from telmi.web.access import request_context, roles
from telmi.web.http import json_answer
from telmi.web.pages import forms
from telmi.web.pages.display import page_context
from telmi.web.render import render

MAX_BYTES = 200 * 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{64}$")
_DEPARTEMENTS = re.compile(r"^\s*([0-9][0-9AB]\s*(,\s*[0-9][0-9A-J]\s*)*)?$")


def _folder(request: web.Request) -> Path:
    return Path(request.app[SETTINGS].data_dir) / "finess"


def _scope(region: str, departements: str) -> tuple[str | None, list[str] | None]:
    region = region.strip()
    if region and not re.fullmatch(r"[0-9]{2,3}", region):
        raise ValidationError("« region » : un code INSEE de région (ex. 27).", field="region")
    if not _DEPARTEMENTS.match(departements.upper()):
        raise ValidationError(
            "« departements » : des codes séparés par des virgules (ex. 21,25).",
            field="departements",
        )
    codes = [d.strip().upper() for d in departements.split(",") if d.strip()]
    return region or None, codes or None


def _stored(request: web.Request, digest: str) -> Path:
    path = _folder(request) / f"{digest}.csv"
    if not _SHA.match(digest) or not path.exists():
        raise ValidationError(
            "Ce fichier n'est plus disponible : envoyez l'extrait de nouveau.", field="file"
        )
    return path


@roles(Role.ADMIN)
async def page(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        past = (
            await session.scalars(select(FinessImport).order_by(FinessImport.id.desc()).limit(10))
        ).all()
    context = page_context(request, imports=past, done=request.query.get("importe"))
    return render(request, "admin_finess.html", context)


@roles(Role.ADMIN)
async def upload(request: web.Request) -> web.Response:
    """The raw file in; where its preview is, out (JSON, for the page's script, errors too)."""
    try:
        return await _upload(request)
    except TelmiError as exc:
        error = {"code": exc.code, "message": exc.message, "field": exc.field}
        return json_answer({"error": error}, status=exc.status)


async def _upload(request: web.Request) -> web.Response:
    data = bytearray()
    while chunk := await request.content.read(1024 * 1024):
        data.extend(chunk)
        if len(data) > MAX_BYTES:
            raise ValidationError("Le fichier dépasse 200 Mo.", field="file")
    if not data:
        raise ValidationError("Choisissez le fichier de l'extrait.", field="file")
    if not bytes(data[:64]).removeprefix(b"\xef\xbb\xbf").startswith(b"finess;etalab"):
        raise ValidationError(
            "Ce fichier n'est pas un extrait FINESS (ligne 1 : « finess;etalab;… » attendu).",
            field="file",
        )
    digest = hashlib.sha256(data).hexdigest()
    folder = _folder(request)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):  # one pending extract at a time
        old.unlink(missing_ok=True)
    (folder / f"{digest}.csv").write_bytes(bytes(data))
    url = (
        request.app.router["admin_finess_preview"]
        .url_for()
        .with_query(
            {
                "fichier": digest,
                "nom": request.query.get("nom", "")[:200],
                "region": request.query.get("region", ""),
                "departements": request.query.get("departements", ""),
            }
        )
    )
    return json_answer({"url": str(url)})


def _read(request: web.Request, digest: str, name: str, strict: bool) -> finess.Extract:
    return finess.read_extract(
        _stored(request, digest).read_bytes(), filename=name[:200], strict=strict
    )


@roles(Role.ADMIN)
async def preview(request: web.Request) -> web.Response:
    q = request.query
    context: dict[str, Any] = {
        "fichier": q.get("fichier", ""),
        "nom": q.get("nom", ""),
        "region": q.get("region", ""),
        "departements": q.get("departements", ""),
    }
    try:
        region, departements = _scope(context["region"], context["departements"])
        extract = _read(request, context["fichier"], context["nom"], strict=False)
        async with request.app[DB].read() as session:
            planned = await finess.plan(
                session, extract, region=region, departements=departements,
                now=request_context(request).now,
            )  # fmt: skip
    except TelmiError as exc:
        return render(
            request,
            "admin_finess.html",
            page_context(request, imports=[], error=exc, done=None),
            status=422,
        )
    context |= {"plan": planned, "lines": finess.describe(planned), "summary": planned.summary()}
    return render(request, "admin_finess_preview.html", page_context(request, **context))


@roles(Role.ADMIN)
async def apply(request: web.Request) -> web.StreamResponse:
    form = await forms.read(request)
    ctx = request_context(request)
    digest, name = forms.text(form, "fichier"), forms.text(form, "nom")
    try:
        region, departements = _scope(forms.text(form, "region"), forms.text(form, "departements"))
        extract = _read(request, digest, name, strict=False)
        _, done = await request.app[DB].run_write(
            lambda s: finess.import_extract(
                s, ctx, extract, region=region, departements=departements
            )
        )
    except TelmiError as exc:
        return render(
            request,
            "admin_finess.html",
            page_context(request, imports=[], error=exc, done=None),
            status=422,
        )
    _stored(request, digest).unlink(missing_ok=True)
    location = request.app.router["admin_finess"].url_for().with_query({"importe": str(done.id)})
    raise web.HTTPSeeOther(location)
