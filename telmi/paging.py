"""Keyset pagination: every list is read a page at a time, after the last row seen.

A page costs its own rows, never the history's: the query orders by a key backed by an
index (`starts_at, id` for bookings, `id` for journals) and reads `limit + 1` rows after the
cursor's key, the extra row only telling whether there is a next page.

The cursor handed to clients is opaque and signed: `payload.signature` in base64url, the
payload naming the list and its scope (the filters that made it), the signature an
HMAC-SHA256 under a key derived from `TELMI_SECRET_KEY`. A cursor that was edited, or that
comes from another list or other filters, is a 422 on `cursor`, never a wrong page.

Services take and return typed keys (`Page.next_key`); only the edge (`telmi/web/paging.py`)
turns them into text and back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field

from telmi.errors import ValidationError
from telmi.values import MAX_ID, Query

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR = 400

T = TypeVar("T")
Key = tuple[Any, ...]


class PageQuery(Query):
    """`limit` (1 to 200, default 50) and the `cursor` of the previous page's `next_cursor`."""

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page")
    cursor: str | None = Field(
        None, max_length=MAX_CURSOR, description="`next_cursor` of the previous page (opaque)"
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_key: Key | None  # the last item's key when more follow

    @classmethod
    def of(cls, rows: Sequence[T], limit: int, key: Callable[[T], Key]) -> Page[T]:
        """A page from `limit + 1` rows read in order: the extra one says more follow."""
        items = list(rows[:limit])
        return cls(items, key(items[-1]) if len(rows) > limit and items else None)

    def map(self, convert: Callable[[T], Any]) -> Page[Any]:
        return Page([convert(item) for item in self.items], self.next_key)


@dataclass(frozen=True)
class Keyset:
    """A list's name and the types of its key's columns, in order."""

    name: str
    types: tuple[type, ...]

    def encode(self, secret: str, key: Key, scope: str = "") -> str:
        values = [_dump(value, kind) for value, kind in zip(key, self.types, strict=True)]
        payload = _b64(json.dumps([self.name, scope, values], separators=(",", ":")).encode())
        return f"{payload}.{_sign(secret, payload)}"

    def decode(self, secret: str, cursor: str, scope: str = "") -> Key:
        """The key a cursor of this list and scope carries; ValidationError otherwise."""
        try:
            payload, signature = cursor.split(".")
            if not hmac.compare_digest(signature, _sign(secret, payload)):
                raise ValueError("signature")
            name, its_scope, values = json.loads(_unb64(payload))
            if name != self.name or its_scope != scope or len(values) != len(self.types):
                raise ValueError("another list")
            return tuple(_load(v, kind) for v, kind in zip(values, self.types, strict=True))
        except (ValueError, TypeError, UnicodeDecodeError):
            raise ValidationError(
                "Curseur de pagination invalide : repartez de la première page.",
                field="cursor",
                code="invalid_cursor",
            ) from None


def _dump(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"key value {value!r} is not {kind.__name__}")
    return value.isoformat() if isinstance(value, datetime) else value


def _load(value: Any, kind: type) -> Any:
    if kind is datetime:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("naive instant")
        return at
    if kind is int and (type(value) is not int or not 0 <= value <= MAX_ID):
        raise ValueError("id")
    if kind is str and type(value) is not str:
        raise ValueError("text")
    return value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"telmi page cursor v1", hashlib.sha256).digest()


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest()[:18])
