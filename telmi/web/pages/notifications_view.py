"""« Mes notifications » as a list of messages: a title, the text with its links, a French
date, read or not; not the e-mail as sent (no signature, no delivery state).

A notice's body is plain text written for mail (telmi/notify.py and the services that
enqueue): paragraphs split by blank lines, « Libellé : https://… » lines. Here each URL of
Telmi becomes a link on its label, and a notice about a booking links to it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from telmi import labels, notify
from telmi.models import Notification, Role, User

_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)»"
# A bare URL gets the name of where it goes.
_DESTINATIONS = (
    (re.compile(r"^/consultation/\d+$"), "Rejoindre la consultation"),
    (re.compile(r"^/test-video$"), "Tester votre vidéo"),
    (re.compile(r"^/teleexpertise/\d+$"), "Voir la demande"),
    (re.compile(r"^/rendez-vous/\d+/compte-rendu$"), "Voir le compte rendu"),
    (re.compile(r"^/compte/lien#"), "Choisir mon mot de passe"),
)
_SIGNATURE = "— Telmi"


@dataclass(frozen=True)
class Piece:
    """Text, or a link when `href` is set."""

    text: str
    href: str | None = None


@dataclass(frozen=True)
class Message:
    id: int
    subject: str
    when: str  # « le 1er décembre à 14 h 30 »
    at: str  # ISO 8601, for <time datetime>
    unread: bool
    paragraphs: list[list[list[Piece]]]  # paragraphs > lines > pieces
    links: list[Piece] = field(default_factory=list)


def _href(url: str, public_url: str) -> str:
    """Telmi's own URLs as paths (they work whatever the configured public address)."""
    base = public_url.rstrip("/")
    if base and (url == base or url.startswith(base + "/") or url.startswith(base + "#")):
        return url[len(base) :] or "/"
    return url


def _named(href: str) -> str | None:
    return next((name for pattern, name in _DESTINATIONS if pattern.search(href)), None)


def line_pieces(line: str, public_url: str) -> list[Piece]:
    """A line with its URLs as links; « Libellé : URL » becomes a link named « Libellé »."""
    pieces: list[Piece] = []
    rest = 0
    for match in _URL.finditer(line):
        url = match.group().rstrip(_TRAILING)
        end = match.start() + len(url)
        before, href = line[rest : match.start()], _href(url, public_url)
        head, colon, _ = before.rpartition(" : ")
        if colon and not line[end:].strip() and head.strip():
            # « Rejoindre la consultation : https://… » at the end of the line.
            stop = head.rfind(". ")  # the link is the last sentence, not the whole line
            sentence_start = stop + 2 if stop >= 0 else 0
            if sentence_start:
                pieces.append(Piece(head[:sentence_start]))
            pieces.append(Piece(head[sentence_start:], href))
        else:
            if before:
                pieces.append(Piece(before))
            pieces.append(Piece(_named(href) or url, href))
        rest = end
    if line[rest:]:
        pieces.append(Piece(line[rest:]))
    return pieces


def paragraphs(notice: Notification, public_url: str) -> list[list[list[Piece]]]:
    """The body without what only a mail needs: the lead that repeats the subject and the
    signature."""
    blocks = [b.strip() for b in notice.body.replace("\r\n", "\n").split("\n\n")]
    blocks = [b for b in blocks if b and not b.startswith(_SIGNATURE)]
    if blocks and blocks[0].rstrip(".") == notice.subject.rstrip("."):
        blocks = blocks[1:]
    return [[line_pieces(line, public_url) for line in b.split("\n") if line] for b in blocks]


def booking_link(user: User, booking_id: int, starts_at: datetime | None, tz: ZoneInfo) -> Piece:
    """Where a booking is, for whoever received the notice: « Mes rendez-vous » for the
    facility's staff, the week of the agenda for a specialist."""
    if user.role is Role.SPECIALIST and starts_at is not None:
        day = starts_at.astimezone(tz).date()
        return Piece("Voir dans mon agenda", f"/agenda?semaine={day.isoformat()}")
    if user.role is Role.SPECIALIST:
        return Piece("Voir mon agenda", "/agenda")
    return Piece("Voir le rendez-vous", f"/rendez-vous#rdv-{booking_id}")


def messages(
    notices: list[Notification],
    user: User,
    *,
    starts: dict[int, datetime],
    now: datetime,
    tz: ZoneInfo,
    public_url: str,
) -> list[Message]:
    this_year = now.astimezone(tz).year
    shown = []
    for n in notices:
        local = n.created_at.astimezone(tz)
        booking_id = notify.booking_of(n)
        links = []
        if booking_id is not None and user.role in (Role.STAFF, Role.SPECIALIST):
            links.append(booking_link(user, booking_id, starts.get(booking_id), tz))
        shown.append(
            Message(
                id=n.id,
                subject=n.subject,
                when=labels.on(local, year=local.year != this_year),
                at=local.isoformat(timespec="minutes"),
                unread=n.read_at is None,
                paragraphs=paragraphs(n, public_url),
                links=links,
            )
        )
    return shown
