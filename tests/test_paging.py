"""Signed keyset cursors: a page's key comes back as it went, and any other text is a 422."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telmi.errors import ValidationError
from telmi.paging import Keyset, Page

SECRET = "s" * 40
BOOKINGS = Keyset("bookings", (datetime, int))
JOURNAL = Keyset("journal", (int,))
AT = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # the spring-forward night, in UTC


def test_a_cursor_gives_back_its_key():
    cursor = BOOKINGS.encode(SECRET, (AT, 42), scope="upcoming")
    assert BOOKINGS.decode(SECRET, cursor, scope="upcoming") == (AT, 42)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # signature edited
        lambda c: "x" + c,  # payload edited
        lambda c: c.split(".")[0],  # signature dropped
        lambda c: "",
        lambda c: "....",
        lambda c: "not base64!.zz",
    ],
)
def test_an_edited_cursor_is_refused(change):
    cursor = BOOKINGS.encode(SECRET, (AT, 42))
    with pytest.raises(ValidationError) as refused:
        BOOKINGS.decode(SECRET, change(cursor) or "x")
    assert refused.value.field == "cursor"
    assert refused.value.status == 422


def test_a_cursor_of_another_list_or_other_filters_is_refused():
    journal = JOURNAL.encode(SECRET, (42,))
    with pytest.raises(ValidationError):
        BOOKINGS.decode(SECRET, journal)
    upcoming = BOOKINGS.encode(SECRET, (AT, 42), scope="upcoming")
    with pytest.raises(ValidationError):
        BOOKINGS.decode(SECRET, upcoming, scope="past")


def test_a_cursor_signed_under_another_secret_is_refused():
    with pytest.raises(ValidationError):
        BOOKINGS.decode(SECRET, BOOKINGS.encode("t" * 40, (AT, 42)))


def test_a_page_says_more_follow_only_when_the_extra_row_came():
    rows = [(AT, i) for i in range(1, 5)]
    assert Page.of(rows, 3, lambda r: r).next_key == (AT, 3)
    assert Page.of(rows, 4, lambda r: r).next_key is None
    assert Page.of([], 4, lambda r: r).items == []
