"""Join tokens: short-lived, signed, bound to one room, one participant identity and a role.

`payload.signature`, both base64url; the signature is an HMAC-SHA256 under a key derived
from the server secret for this purpose alone. They travel in the first WebSocket frame,
never in a URL, and expire within minutes (reconnection uses the room's resume token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from signaling import protocol
from signaling.rooms import Grant
from signaling.server import AuthError


@dataclass(frozen=True)
class JoinClaims:
    room_id: str
    identity: str  # "user:12" or "invite:7"
    role: str  # specialist, staff, guest
    name: str
    host: bool
    lobby: bool
    consultation_id: int
    expires: int  # Unix seconds

    def grant(self) -> Grant:
        return Grant(self.room_id, self.identity, self.role, self.name, self.host, self.lobby)


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"telmi join token v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: JoinClaims, secret: str) -> str:
    payload = _b64(json.dumps(asdict(claims), separators=(",", ":")).encode())
    signature = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify(token: str, secret: str, *, room_id: str, now: datetime) -> JoinClaims:
    """The claims of a genuine, unexpired token for this room; AuthError otherwise."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise AuthError(protocol.UNAUTHORIZED, "invalid join token")
    try:
        claims = JoinClaims(**json.loads(_unb64(payload)))
    except (ValueError, TypeError):
        raise AuthError(protocol.UNAUTHORIZED, "invalid join token") from None
    if claims.expires <= now.timestamp():
        raise AuthError(protocol.TOKEN_EXPIRED, "join token expired: ask for a new one")
    if claims.room_id != room_id:
        raise AuthError(protocol.UNAUTHORIZED, "this token is for another room")
    return claims
