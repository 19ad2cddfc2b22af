"""Clinical photos: checked by decoding, cleaned of metadata, stored by content hash.

The type comes from what Pillow decodes, never from the file name or the declared type. A
photo is fully decoded (a truncated file fails), refused above a pixel budget (image
bombs), turned upright from its EXIF orientation, then re-encoded without any metadata:
no EXIF, no GPS, no camera serial, no comment. Files live under the data directory,
named by the SHA-256 of the cleaned bytes (the database keeps the metadata), with a
thumbnail for the inbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from telmi.errors import ValidationError
from telmi.models import PhotoBlob

try:  # HEIC from iPhones, when the maintained plugin is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover
    HEIC = False

MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; beyond is a bomb, not a wound
MAX_PHOTOS = 10
THUMBNAIL = (320, 320)
ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "HEIF": "image/jpeg"}  # HEIC -> JPEG


@dataclass(frozen=True)
class Photo:
    data: bytes
    media_type: str
    width: int
    height: int
    sha256: str
    thumbnail: bytes

    @property
    def extension(self) -> str:
        return "png" if self.media_type == "image/png" else "jpg"


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, field="photos", code="bad_photo")


def clean(raw: bytes, name: str = "photo") -> Photo:
    """The photo re-encoded without metadata, or a ValidationError saying what is wrong."""
    label = f"« {name[:60]} »"
    if len(raw) > MAX_BYTES:
        raise _refuse(f"{label} dépasse 15 Mo.")
    if not raw:
        raise _refuse(f"{label} est vide.")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as probe:
                kind = probe.format or ""
                if kind not in ACCEPTED:
                    raise _refuse(f"{label} n'est pas une photo JPEG, PNG ou HEIC.")
                probe.verify()
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(f"{label} a trop de pixels (plus de 40 millions) : image refusée.") from None
    except UnidentifiedImageError:
        raise _refuse(f"{label} n'est pas une image lisible.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _refuse(f"{label} est endommagée ou tronquée ({str(exc)[:80]}).") from None
    media_type = ACCEPTED[kind]
    out = io.BytesIO()
    # Pillow writes metadata only when asked (exif=, pnginfo=, icc_profile=): none is.
    if media_type == "image/png":
        upright.save(out, "PNG", optimize=True)
    else:
        upright.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
    data = out.getvalue()
    thumb = io.BytesIO()
    small = upright.convert("RGB")
    small.thumbnail(THUMBNAIL)
    small.save(thumb, "JPEG", quality=80)
    return Photo(
        data,
        media_type,
        upright.width,
        upright.height,
        hashlib.sha256(data).hexdigest(),
        thumb.getvalue(),
    )


class FileStore:
    """Files under `root`, by content hash; writing the same photo twice is a no-op."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, *, thumbnail: bool = False) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a content hash")
        folder = self.root / ("thumbs" if thumbnail else sha256[:2])
        return folder / f"{sha256}.img"

    def _save(self, photo: Photo) -> None:
        for data, thumbnail in ((photo.data, False), (photo.thumbnail, True)):
            target = self.path(photo.sha256, thumbnail=thumbnail)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(target)  # atomic: a reader never sees half a photo

    async def save(self, session: AsyncSession, photo: Photo) -> None:
        await asyncio.to_thread(self._save, photo)

    async def read(self, session: AsyncSession, sha256: str, *, thumbnail: bool = False) -> bytes:
        return await asyncio.to_thread(self.path(sha256, thumbnail=thumbnail).read_bytes)


class DatabaseStore:
    """Bytes in the `photo_blobs` table, written in the request's own transaction."""

    async def save(self, session: AsyncSession, photo: Photo) -> None:
        if await session.get(PhotoBlob, photo.sha256) is None:
            session.add(PhotoBlob(sha256=photo.sha256, data=photo.data, thumbnail=photo.thumbnail))
            await session.flush()

    async def read(self, session: AsyncSession, sha256: str, *, thumbnail: bool = False) -> bytes:
        column = PhotoBlob.thumbnail if thumbnail else PhotoBlob.data
        data = await session.scalar(select(column).where(PhotoBlob.sha256 == sha256))
        if data is None:
            raise FileNotFoundError(sha256)
        return bytes(data)


PhotoStore = FileStore | DatabaseStore


def store_for(storage: str, data_dir: Path) -> PhotoStore:
    return DatabaseStore() if storage == "database" else FileStore(data_dir / "photos")
