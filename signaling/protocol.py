"""Signaling protocol v1: JSON text frames `{"type": ..., ...}` on `/ws/rooms/{room_id}`.

Only the shapes live here: parsing and validating what a client sends, building what the
server sends. Nothing here knows about sockets, rooms or Telmi. A frame that is not a valid
client message raises `ProtocolError` with the code the server answers with; the socket
stays open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_SDP_CHARS = 48 * 1024
MAX_CANDIDATE_CHARS = 2 * 1024
MAX_ID_CHARS = 64

# Error codes of `error` frames.
UNAUTHORIZED = "unauthorized"
TOKEN_EXPIRED = "token_expired"
NOT_IN_ROOM = "not_in_room"
BAD_MESSAGE = "bad_message"
RATE_LIMITED = "rate_limited"
ROOM_FULL = "room_full"
ROOM_CLOSED = "room_closed"
UNKNOWN_PARTICIPANT = "unknown_participant"
FORBIDDEN = "forbidden"
DENIED = "denied"

RELAYED = ("offer", "answer", "candidate")


class ProtocolError(Exception):
    """A frame the server refuses; `code` and `message` go back in an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Join:
    token: str
    resume: str | None = None


@dataclass(frozen=True)
class Relay:
    """offer / answer / candidate, for one named participant."""

    type: str
    to: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Admit:
    participant_id: str


@dataclass(frozen=True)
class Deny:
    participant_id: str


@dataclass(frozen=True)
class Leave:
    pass


@dataclass(frozen=True)
class Ping:
    id: str | int | None = None


# What a participant may say of its own media: micro, camera, screen sharing, and audio only
# (a weak network: no video sent, the others show initials).
MEDIA_STATES = frozenset({"audio", "video", "screen", "audio_only"})


@dataclass(frozen=True)
class Update:
    """A participant's own media state (muted, camera off, audio only), shown to the others."""

    state: dict[str, bool]


ClientMessage = Join | Relay | Admit | Deny | Leave | Ping | Update


def _string(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError(
            BAD_MESSAGE, f"'{name}' must be a non-empty string of at most {limit} characters"
        )
    return value


def parse(frame: str) -> ClientMessage:
    """One client text frame, validated; raises ProtocolError(bad_message) otherwise."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(BAD_MESSAGE, "frame too large")
    try:
        body = json.loads(frame)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError(BAD_MESSAGE, "frames are JSON objects") from None
    if not isinstance(body, dict):
        raise ProtocolError(BAD_MESSAGE, "frames are JSON objects")
    kind = body.get("type")
    if kind == "join":
        return Join(
            token=str(_string(body, "token", 4096)),
            resume=_string(body, "resume", 256, required=False),
        )
    if kind in ("offer", "answer"):
        to = str(_string(body, "to", MAX_ID_CHARS))
        return Relay(kind, to, {"sdp": _string(body, "sdp", MAX_SDP_CHARS)})
    if kind == "candidate":
        to = str(_string(body, "to", MAX_ID_CHARS))
        candidate = body.get("candidate")
        if candidate is not None and not isinstance(candidate, dict):
            raise ProtocolError(BAD_MESSAGE, "'candidate' must be an object or null")
        if candidate is not None and len(frame) > MAX_CANDIDATE_CHARS + 256:
            raise ProtocolError(BAD_MESSAGE, "'candidate' is too large")
        return Relay(kind, to, {"candidate": candidate})
    if kind in ("admit", "deny"):
        pid = str(_string(body, "participant_id", MAX_ID_CHARS))
        return Admit(pid) if kind == "admit" else Deny(pid)
    if kind == "leave":
        return Leave()
    if kind == "ping":
        ping_id = body.get("id")
        if ping_id is not None and not isinstance(ping_id, str | int):
            raise ProtocolError(BAD_MESSAGE, "'id' must be a string or a number")
        return Ping(ping_id)
    if kind == "update":
        state = body.get("state")
        if (
            not isinstance(state, dict)
            or len(state) > 8
            or not all(k in MEDIA_STATES and isinstance(v, bool) for k, v in state.items())
        ):
            raise ProtocolError(
                BAD_MESSAGE, "'state' maps audio, video, screen or audio_only to booleans"
            )
        return Update(state)
    if not isinstance(kind, str):
        raise ProtocolError(BAD_MESSAGE, "a frame needs a string 'type'")
    raise ProtocolError(BAD_MESSAGE, f"unknown message type '{kind[:32]}'")


def encode(kind: str, **fields: Any) -> str:
    """A server frame."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), ensure_ascii=False)


def error(code: str, message: str) -> str:
    return encode("error", code=code, message=message)
