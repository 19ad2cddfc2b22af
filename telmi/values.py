"""Values every edge checks the same way: ids and text.

An id is a PostgreSQL `integer`, so anything outside 1 to 2^31-1 names no row: in a path it
is a 404, in a body or a query string a 422, never a driver error. Text that a database or
an encoder would choke on (NUL, which PostgreSQL refuses in text; a lone surrogate, which
has no UTF-8 form) is refused where it enters, naming its field.
"""

from __future__ import annotations

from typing import Any

from telmi.errors import ValidationError

MAX_ID = 2**31 - 1


def check_id(value: Any, field: str, *, digits: bool = False) -> int:
    """An id: a JSON integer, or with `digits` also its decimal text (a query string)."""
    if digits and isinstance(value, str) and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValidationError(f"« {field} » : un identifiant entier de 1 à {MAX_ID}.", field=field)
    return value


def bad_character(text: str) -> str | None:
    """What makes `text` unstorable, if anything."""
    if "\x00" in text:
        return "le caractère nul"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "un caractère Unicode invalide (demi-paire de substitution)"
    return None


def check_characters(value: Any, field: str = "") -> None:
    """Walk a parsed JSON value or a form: every string, keys included, must be storable."""
    if isinstance(value, str):
        problem = bad_character(value)
        if problem:
            raise ValidationError(
                f"« {field or 'corps'} » contient {problem}.", field=field or None
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_characters(key, field)
            check_characters(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_characters(item, f"{field}[{index}]")
