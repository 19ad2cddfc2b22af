"""Cursors at the edge: the signed text a client sees, from and to the typed keys of
`telmi.paging`, under the application's secret key."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from telmi.keys import SETTINGS
from telmi.paging import Key, Keyset, Page


def after(request: web.Request, keyset: Keyset, cursor: str | None, scope: str = "") -> Key | None:
    """The key to read after, from the caller's cursor (None: the first page); 422 if the
    cursor is not one this list, with these filters, handed out."""
    if not cursor:
        return None
    return keyset.decode(request.app[SETTINGS].secret_key, cursor, scope)


def next_cursor(
    request: web.Request, keyset: Keyset, page: Page[Any], scope: str = ""
) -> str | None:
    if page.next_key is None:
        return None
    return keyset.encode(request.app[SETTINGS].secret_key, page.next_key, scope)
