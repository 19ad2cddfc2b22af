"""JSON: tele-expertise requests, their photos (multipart upload), the thread, the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from aiohttp import MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi import expertise, photos
from telmi.errors import MalformedBody, ValidationError
from telmi.expertise import ExpertiseAnswer, ExpertiseDecline, ExpertiseNote, NewRequest
from telmi.keys import DB, SETTINGS
from telmi.models import (
    ExpertiseAttachment,
    ExpertiseRequest,
    ExpertiseStatus,
    ExpertiseUrgency,
    Patient,
    Role,
)
from telmi.paging import Key, Page, PageQuery
from telmi.web import paging
from telmi.web.access import request_context, roles
from telmi.web.api.spec import Out, endpoint

CARERS = (Role.STAFF, Role.SPECIALIST)


class ExpertiseRequestOut(Out):
    """A tele-expertise request"""

    id: int
    status: ExpertiseStatus
    urgency: ExpertiseUrgency
    patient_id: int = Field(description="the resident")
    patient_ref: str = Field(description="the resident's reference in the facility, never a name")
    question: str
    clinical_context: str
    facility_id: int
    specialty_id: int
    specialist_id: int | None = Field(description="the specialist it is addressed to, if named")
    assigned_to_id: int | None = Field(description="the specialist who took it")
    created_at: datetime
    sent_at: datetime | None
    due_at: datetime | None
    answered_at: datetime | None


class ExpertiseRequests(Out):
    """A page of requests, newest first: the facility's by creation (staff), the inbox by
    sending (specialists)"""

    items: list[ExpertiseRequestOut]
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last")


class ExpertiseFacility(Out):
    name: str
    finess: str


class ExpertiseThreadMessage(Out):
    kind: Literal["question", "information", "answer", "declined"]
    body: str
    author: str = Field(description="the author's name")
    at: datetime


class ExpertisePhoto(Out):
    """A photo of a request"""

    id: int
    media_type: Literal["image/jpeg", "image/png"]
    width: int
    height: int
    size_bytes: int
    url: str
    thumbnail_url: str


class ExpertisePhotos(Out):
    """The photos added"""

    items: list[ExpertisePhoto]


class ExpertiseThread(ExpertiseRequestOut):
    """The request, its messages and its photos"""

    specialty: str = Field(description="specialty code")
    facility: ExpertiseFacility
    messages: list[ExpertiseThreadMessage]
    photos: list[ExpertisePhoto]


def store(request: web.Request) -> photos.PhotoStore:
    settings = request.app[SETTINGS]
    return photos.store_for(settings.photo_storage, settings.data_dir)


async def patient_refs(
    session: AsyncSession, requests: Iterable[ExpertiseRequest]
) -> dict[int, str]:
    """The residents' references of these requests (a request holds only the resident's id)."""
    ids = {r.patient_id for r in requests}
    if not ids:
        return {}
    rows = await session.execute(select(Patient.id, Patient.reference).where(Patient.id.in_(ids)))
    return {patient_id: reference for patient_id, reference in rows}


def request_json(r: ExpertiseRequest, refs: dict[int, str]) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status.value,
        "urgency": r.urgency.value,
        "patient_id": r.patient_id,
        "patient_ref": refs.get(r.patient_id, ""),
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


STATE = "Not in a state that allows it"


async def list_page(
    request: web.Request, after: Key | None, limit: int
) -> tuple[Page[ExpertiseRequest], dict[int, str]]:
    """A page of the caller's list and its residents' references, for the API and the page
    alike (one audit event for the page)."""
    ctx = request_context(request)

    async def work(session: AsyncSession) -> tuple[Page[ExpertiseRequest], dict[int, str]]:
        found = await expertise.listing(session, ctx, after=after, limit=limit)
        return found, await patient_refs(session, found.items)

    return await request.app[DB].run_write(work)


@roles(*CARERS)
@endpoint(
    "Staff: their facility's requests; specialists: their inbox; newest first, a page at a time",
    "listExpertise",
    query=PageQuery,
    response=ExpertiseRequests,
)
async def list_requests(request: web.Request, query: PageQuery) -> dict[str, Any]:
    keyset, scope = expertise.list_keyset(request_context(request).caller)
    key = paging.after(request, keyset, query.cursor, scope)
    found, refs = await list_page(request, key, query.limit)
    return {
        "items": [request_json(r, refs) for r in found.items],
        "next_cursor": paging.next_cursor(request, keyset, found, scope),
    }


@roles(Role.STAFF)
@endpoint(
    "Create a draft request (staff)",
    "createExpertise",
    body=NewRequest,
    response=ExpertiseRequestOut,
    status=201,
)
async def create(request: web.Request, body: NewRequest) -> dict[str, Any]:
    ctx = request_context(request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await expertise.create(session, ctx, body)
        return request_json(created, await patient_refs(session, [created]))

    return await request.app[DB].run_write(work)


@roles(*CARERS)
@endpoint("The request, its thread and photos (audited)", "showExpertise", response=ExpertiseThread)
async def show(request: web.Request, request_id: int) -> dict[str, Any]:
    """Patient data: `security_headers` marks every API answer `no-store`."""
    ctx = request_context(request)

    async def work(session: AsyncSession) -> tuple[expertise.Thread, dict[int, str]]:
        found = await expertise.thread(session, ctx, request_id)
        return found, await patient_refs(session, [found.request])

    found, refs = await request.app[DB].run_write(work)
    return {
        **request_json(found.request, refs),
        "specialty": found.specialty.code,
        "facility": {"name": found.facility.name, "finess": found.facility.finess},
        "messages": [
            {"kind": m.kind, "body": m.body, "author": name, "at": m.created_at.isoformat()}
            for m, name in found.messages
        ],
        "photos": [photo_json(p) for p in found.photos],
    }


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


PHOTO_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["photos"],
            "additionalProperties": False,
            "properties": {
                "photos": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": photos.MAX_PHOTOS,
                    "items": {"type": "string", "format": "binary"},
                    "description": "JPEG, PNG or HEIC; 15 MB each",
                }
            },
        },
        "encoding": {"photos": {"contentType": "image/jpeg, image/png, image/heic, image/heif"}},
    }
}


@roles(Role.STAFF)
@endpoint(
    "Add photos (multipart/form-data, field « photos »; JPEG, PNG, HEIC; 15 MB, 10 per request)",
    "uploadExpertisePhotos",
    request_content=PHOTO_UPLOAD,
    response=ExpertisePhotos,
    status=201,
    errors={409: "Not a draft, nor asked for more information"},
)
async def upload(request: web.Request, request_id: int) -> dict[str, Any]:
    ctx = request_context(request)
    cleaned = await _read_photos(request)

    async def work(session: AsyncSession) -> list[ExpertiseAttachment]:
        rows = await expertise.add_photos(session, ctx, request_id, cleaned)
        for photo in cleaned:  # inside the transaction: a refused request stores no file
            await store(request).save(session, photo)
        return rows

    rows = await request.app[DB].run_write(work)
    return {"items": [photo_json(p) for p in rows]}


async def run_step(
    request: web.Request,
    request_id: int,
    action: Callable[..., Awaitable[ExpertiseRequest]],
    *args: Any,
    extra: bool = False,
) -> ExpertiseRequest:
    """One step of a request's life, for the API and the pages alike."""
    ctx, settings = request_context(request), request.app[SETTINGS]
    kwargs: dict[str, Any] = {"public_url": settings.public_url}
    if extra:
        kwargs |= {"tz": settings.tz, "vault": settings.vault}
    return await request.app[DB].run_write(lambda s: action(s, ctx, request_id, *args, **kwargs))


async def step_json(
    request: web.Request,
    request_id: int,
    action: Callable[..., Awaitable[ExpertiseRequest]],
    *args: Any,
    extra: bool = False,
) -> dict[str, Any]:
    """A step run by `run_step`, answered as the request it left."""
    done = await run_step(request, request_id, action, *args, extra=extra)
    async with request.app[DB].read() as session:
        return request_json(done, await patient_refs(session, [done]))


@roles(Role.STAFF)
@endpoint(
    "Send the draft to the specialty",
    "sendExpertise",
    response=ExpertiseRequestOut,
    errors={409: "Already sent"},
)
async def send(request: web.Request, request_id: int) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.send)


@roles(Role.SPECIALIST)
@endpoint(
    "Take the request (specialist)",
    "takeExpertise",
    response=ExpertiseRequestOut,
    errors={409: STATE},
)
async def take(request: web.Request, request_id: int) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.take)


@roles(Role.SPECIALIST)
@endpoint(
    "Ask for more information",
    "askExpertise",
    body=ExpertiseNote,
    response=ExpertiseRequestOut,
    errors={409: STATE},
)
async def ask(request: web.Request, request_id: int, body: ExpertiseNote) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.ask, body)


@roles(Role.STAFF)
@endpoint(
    "Reply with the information asked (staff)",
    "replyExpertise",
    body=ExpertiseNote,
    response=ExpertiseRequestOut,
    errors={409: STATE},
)
async def reply(request: web.Request, request_id: int, body: ExpertiseNote) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.reply, body)


@roles(Role.SPECIALIST)
@endpoint(
    "Answer (logs one téléexpertise act)",
    "answerExpertise",
    body=ExpertiseAnswer,
    response=ExpertiseRequestOut,
    errors={409: STATE},
)
async def answer(request: web.Request, request_id: int, body: ExpertiseAnswer) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.answer, body, extra=True)


@roles(Role.SPECIALIST)
@endpoint(
    "Decline with a reason",
    "declineExpertise",
    body=ExpertiseDecline,
    response=ExpertiseRequestOut,
    errors={409: STATE},
)
async def decline(request: web.Request, request_id: int, body: ExpertiseDecline) -> dict[str, Any]:
    return await step_json(request, request_id, expertise.decline, body)


async def _image(request: web.Request, photo_id: int, *, thumbnail: bool) -> web.Response:
    ctx = request_context(request)

    async def work(session: AsyncSession) -> tuple[ExpertiseAttachment, bytes]:
        found = await expertise.photo(session, ctx, photo_id)
        return found, await store(request).read(session, found.content_hash, thumbnail=thumbnail)

    found, data = await request.app[DB].run_write(work)
    media_type = "image/jpeg" if thumbnail else found.media_type
    return web.Response(body=data, content_type=media_type)


BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE = {media: BINARY for media in sorted(set(photos.ACCEPTED.values()))}  # JPEG, PNG


@roles(*CARERS)
@endpoint(
    "A photo, to the request's staff and specialists only (no-store, audited)",
    "expertisePhoto",
    response_content=IMAGE,
)
async def photo(request: web.Request, photo_id: int) -> web.Response:
    return await _image(request, photo_id, thumbnail=False)


@roles(*CARERS)
@endpoint(
    "A photo's thumbnail (no-store, audited)",
    "expertiseThumbnail",
    response_content={"image/jpeg": BINARY},
)
async def thumbnail(request: web.Request, photo_id: int) -> web.Response:
    return await _image(request, photo_id, thumbnail=True)
