"""Paged lists at the edge: the scope a cursor is bound to, and the pages' « Page suivante »
and « Première page » links (the cursor rides in `?curseur=`, no script needed).

A scope made of search terms is hashed: the cursor's payload is signed, not sealed, so a
term typed in a search box must not be readable in the next page's address a second time.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web
from yarl import URL

from telmi.errors import ValidationError
from telmi.paging import MAX_CURSOR, Key, Keyset, Page
from telmi.web.paging import after, next_cursor

PARAM = "curseur"


def scope(*parts: object) -> str:
    """The filters of a list as a cursor's scope: the same filters, the same scope."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def page_after(request: web.Request, keyset: Keyset, scope: str = "") -> Key | None:
    """The key a page's `?curseur=` names (None: the first page); a cursor this list, with
    these filters, did not hand out is a 422 with a French message, never a wrong page."""
    cursor = request.query.get(PARAM) or None
    try:
        if cursor is not None and len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        return after(request, keyset, cursor, scope)
    except (ValueError, ValidationError):
        raise ValidationError(
            "Ce lien de page n'est pas valable (modifié, ou venu d'une autre liste) : "
            "repartez de la première page de la liste.",
            field="cursor",
            code="invalid_cursor",
        ) from None


def page_links(
    request: web.Request,
    keyset: Keyset,
    page: Page[Any],
    scope: str = "",
    *,
    base: URL | None = None,
) -> dict[str, str | None]:
    """`next_page` (this address, or `base` for a form's POST shown again, with the next
    cursor) and `first_page` (the same without a cursor, when this is not the first)."""
    here = request.rel_url if base is None else base
    cursor = next_cursor(request, keyset, page, scope)
    return {
        "next_page": str(here.update_query({PARAM: cursor})) if cursor else None,
        "first_page": str(here.without_query_params(PARAM)) if PARAM in here.query else None,
    }
