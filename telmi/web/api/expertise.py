"""JSON: tele-expertise requests, their photos (multipart upload), the thread, the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import expertise, photos
from telmi.errors import MalformedBody, ValidationError
from telmi.keys import DB, SETTINGS
from telmi.models import ExpertiseAttachment, ExpertiseRequest, Role
from telmi.web.access import current_user, request_context, roles
from telmi.web.api import spec
from telmi.web.http import path_id, read_json

CARERS = (Role.STAFF, Role.SPECIALIST)
NO_STORE = {"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"}


def store(request: web.Request) -> photos.PhotoStore:
    settings = request.app[SETTINGS]
    return photos.store_for(settings.photo_storage, settings.data_dir)


def request_json(r: ExpertiseRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status.value,
        "urgency": r.urgency.value,
        "patient_ref": r.patient_ref,
        "question": r.question,
        "clinical_context": r.clinical_context,
        "facility_id": r.facility_id,
        "specialty_id": r.specialty_id,
        "specialist_id": r.specialist_id,
        "assigned_to_id": r.assigned_to_id,
        "created_at": r.created_at.isoformat(),
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "due_at": r.due_at.isoformat() if r.due_at else None,
        "answered_at": r.answered_at.isoformat() if r.answered_at else None,
    }


def photo_json(p: ExpertiseAttachment) -> dict[str, Any]:
    return {
        "id": p.id,
        "media_type": p.media_type,
        "width": p.width,
        "height": p.height,
        "size_bytes": p.size_bytes,
        "url": f"/api/expertise/photos/{p.id}",
        "thumbnail_url": f"/api/expertise/photos/{p.id}/thumbnail",
    }


@roles(*CARERS)
async def list_requests(request: web.Request) -> web.Response:
    user = current_user(request)
    async with request.app[DB].read() as session:
        found = await expertise.listing(session, user)
    return web.json_response({"items": [request_json(r) for r in found]})


@roles(Role.STAFF)
async def create(request: web.Request) -> web.Response:
    user, body, now = current_user(request), await read_json(request), request_context(request).now
    created = await request.app[DB].run_write(lambda s: expertise.create(s, user, body, now=now))
    return web.json_response(request_json(created), status=201)


@roles(*CARERS)
async def show(request: web.Request) -> web.Response:
    user, request_id, now = (
        current_user(request),
        path_id(request, "request_id"),
        request_context(request).now,
    )
    found = await request.app[DB].run_write(
        lambda s: expertise.thread(
            s, user, request_id, now=now, address=request_context(request).address
        )
    )
    return web.json_response(
        {
            **request_json(found.request),
            "specialty": found.specialty.code,
            "facility": {"name": found.facility.name, "finess": found.facility.finess},
            "messages": [
                {"kind": m.kind, "body": m.body, "author": name, "at": m.created_at.isoformat()}
                for m, name in found.messages
            ],
            "photos": [photo_json(p) for p in found.photos],
        },
        headers=NO_STORE,
    )


async def _read_photos(request: web.Request) -> list[photos.Photo]:
    """Every file part, each at most 15 MB, all cleaned before anything is stored."""
    if not request.content_type.startswith("multipart/"):
        raise ValidationError(
            "Envoyez les photos en multipart/form-data (champ « photos »).", field="photos"
        )
    try:
        raw = await _file_parts(await request.multipart())
    except (ValueError, HttpProcessingError) as exc:  # broken framing or part headers
        raise MalformedBody(f"Corps multipart mal formé : {exc}") from None
    if not raw:
        raise ValidationError("Aucune photo reçue.", field="photos")
    return [await asyncio.to_thread(photos.clean, data, name) for name, data in raw]


async def _file_parts(reader: MultipartReader) -> list[tuple[str, bytes]]:
    raw: list[tuple[str, bytes]] = []
    while (part := await reader.next()) is not None:
        if not hasattr(part, "read_chunk"):
            continue
        if len(raw) >= photos.MAX_PHOTOS:
            raise ValidationError(
                f"{photos.MAX_PHOTOS} photos au plus par demande.", field="photos"
            )
        name, data = part.filename or "photo", bytearray()  # type: ignore[union-attr]
        while chunk := await part.read_chunk(256 * 1024):  # type: ignore[union-attr]
            data.extend(chunk)
            if len(data) > photos.MAX_BYTES:
                raise ValidationError(
                    f"« {name[:60]} » dépasse 15 Mo.", field="photos", code="bad_photo"
                )
        raw.append((name, bytes(data)))
    return raw


@roles(Role.STAFF)
async def upload(request: web.Request) -> web.Response:
    user, request_id, now = (
        current_user(request),
        path_id(request, "request_id"),
        request_context(request).now,
    )
    cleaned = await _read_photos(request)

    async def work(session: AsyncSession) -> list[ExpertiseAttachment]:
        rows = await expertise.add_photos(session, user, request_id, cleaned, now=now)
        for photo in cleaned:  # inside the transaction: a refused request stores no file
            await store(request).save(session, photo)
        return rows

    rows = await request.app[DB].run_write(work)
    return web.json_response({"items": [photo_json(p) for p in rows]}, status=201)


async def run_step(
    request: web.Request,
    action: Callable[..., Awaitable[ExpertiseRequest]],
    text: tuple[Any, ...],
    *,
    extra: bool,
) -> ExpertiseRequest:
    """One step of a request's life, for the API and the pages alike."""
    user, request_id, settings = (
        current_user(request),
        path_id(request, "request_id"),
        request.app[SETTINGS],
    )
    kwargs: dict[str, Any] = {
        "now": request_context(request).now,
        "public_url": settings.public_url,
    }
    if extra:
        kwargs |= {"tz": settings.tz, "secret": settings.secret_key}
    return await request.app[DB].run_write(lambda s: action(s, user, request_id, *text, **kwargs))


def _step(
    action: Callable[..., Awaitable[ExpertiseRequest]], *, text: bool, extra: bool = False
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        body = await read_json(request) if text else {}
        args = (body.get("body"),) if text else ()
        return web.json_response(request_json(await run_step(request, action, args, extra=extra)))

    return handler


send = roles(Role.STAFF)(_step(expertise.send, text=False))
take = roles(Role.SPECIALIST)(_step(expertise.take, text=False))
ask = roles(Role.SPECIALIST)(_step(expertise.ask, text=True))
reply = roles(Role.STAFF)(_step(expertise.reply, text=True))
answer = roles(Role.SPECIALIST)(_step(expertise.answer, text=True, extra=True))
decline = roles(Role.SPECIALIST)(_step(expertise.decline, text=True))


@roles(*CARERS)
async def photo(request: web.Request) -> web.Response:
    user, photo_id, now = (
        current_user(request),
        path_id(request, "photo_id"),
        request_context(request).now,
    )
    thumbnail = request.path.endswith("/thumbnail")

    async def work(session: AsyncSession) -> tuple[ExpertiseAttachment, bytes]:
        found = await expertise.photo(
            session, user, photo_id, now=now, address=request_context(request).address
        )
        return found, await store(request).read(session, found.content_hash, thumbnail=thumbnail)

    found, data = await request.app[DB].run_write(work)
    media_type = "image/jpeg" if thumbnail else found.media_type
    return web.Response(body=data, content_type=media_type, headers=NO_STORE)


_TEXT = {"type": "object", "required": ["body"], "properties": {"body": {"type": "string"}}}
_ONE = spec.ok("The request", spec.ref("ExpertiseRequest"))
_STEP_ERRORS = {
    "403": spec.FORBIDDEN,
    "404": spec.error("No such request"),
    "409": spec.error("Not in a state that allows it"),
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "ExpertiseRequest": {
        "type": "object",
        "required": ["id", "status", "urgency"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": [s.value for s in expertise.LABELS]},
            "urgency": {"type": "string", "enum": ["24h", "72h", "7d"]},
            "patient_ref": {"type": "string"},
            "question": {"type": "string"},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "additionalProperties": True,
    }
}


def _step_op(summary: str, op_id: str, body: bool) -> dict[str, Any]:
    return spec.fragment(
        summary,
        op_id,
        {"200": _ONE, **_STEP_ERRORS, **({"422": spec.error("Missing text")} if body else {})},
        params=[spec.path("request_id")],
        body=_TEXT if body else None,
        unsafe=True,
    )


OPENAPI_PATHS: dict[str, Any] = {
    "/api/expertise": {
        "get": spec.fragment(
            "Staff: their facility's requests; specialists: their inbox by due date",
            "listExpertise",
            {"200": spec.ok("Requests", spec.items("ExpertiseRequest")), "403": spec.FORBIDDEN},
        ),
        "post": spec.fragment(
            "Create a draft request (staff)",
            "createExpertise",
            {"201": _ONE, "403": spec.FORBIDDEN, "422": spec.error("Invalid field")},
            body={
                "type": "object",
                "required": ["specialty", "patient_ref", "question", "consent_recorded"],
                "properties": {
                    "specialty": {"type": "string"},
                    "specialist_id": spec.ID_SCHEMA,
                    "patient_ref": {"type": "string"},
                    "consent_recorded": {"const": True},
                    "question": {"type": "string"},
                    "clinical_context": {"type": "string"},
                    "urgency": {"type": "string", "enum": ["24h", "72h", "7d"]},
                },
            },
            unsafe=True,
        ),
    },
    "/api/expertise/{request_id}": {
        "get": spec.fragment(
            "The request, its thread and photos (audited)",
            "showExpertise",
            {"200": spec.ok("The thread", spec.ref("ExpertiseRequest")), **_STEP_ERRORS},
            params=[spec.path("request_id")],
        )
    },
    "/api/expertise/{request_id}/photos": {
        "post": {
            **spec.fragment(
                "Add photos (multipart/form-data, field « photos »; JPEG, PNG, HEIC; 15 MB, 10 per request)",
                "uploadExpertisePhotos",
                {
                    "201": spec.ok("The photos", spec.items("ExpertiseRequest")),
                    **_STEP_ERRORS,
                    "422": spec.error("Not an image, damaged, too large or too many"),
                },
                params=[spec.path("request_id")],
                unsafe=True,
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "photos": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                }
                            },
                        }
                    }
                },
            },
        }
    },
    "/api/expertise/{request_id}/send": {
        "post": _step_op("Send the draft to the specialty", "sendExpertise", False)
    },
    "/api/expertise/{request_id}/take": {
        "post": _step_op("Take the request (specialist)", "takeExpertise", False)
    },
    "/api/expertise/{request_id}/ask": {
        "post": _step_op("Ask for more information", "askExpertise", True)
    },
    "/api/expertise/{request_id}/reply": {
        "post": _step_op("Reply with the information asked (staff)", "replyExpertise", True)
    },
    "/api/expertise/{request_id}/answer": {
        "post": _step_op("Answer (logs one téléexpertise act)", "answerExpertise", True)
    },
    "/api/expertise/{request_id}/decline": {
        "post": _step_op("Decline with a reason", "declineExpertise", True)
    },
    "/api/expertise/photos/{photo_id}": {
        "get": spec.fragment(
            "A photo, to the request's staff and specialists only (no-store, audited)",
            "expertisePhoto",
            {
                "200": {"description": "The image"},
                "403": spec.FORBIDDEN,
                "404": spec.error("No such photo"),
            },
            params=[spec.path("photo_id")],
        )
    },
    "/api/expertise/photos/{photo_id}/thumbnail": {
        "get": spec.fragment(
            "A photo's thumbnail (no-store, audited)",
            "expertiseThumbnail",
            {
                "200": {"description": "The image"},
                "403": spec.FORBIDDEN,
                "404": spec.error("No such photo"),
            },
            params=[spec.path("photo_id")],
        )
    },
}
