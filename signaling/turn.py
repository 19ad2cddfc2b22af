"""ICE servers for a participant: STUN as configured, TURN with ephemeral credentials.

The credentials follow the TURN REST convention coturn implements with `use-auth-secret`:
the username is `expiry:participant` (expiry in Unix seconds) and the password the base64
HMAC-SHA1 of that username under the shared secret, so the TURN server checks them without
asking us, and they stop working by themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: str | None,
    participant_id: str,
    now: float,
    ttl_seconds: int,
) -> list[dict[str, Any]]:
    """The `iceServers` list for RTCPeerConnection; empty when nothing is configured (and
    then it must be sent empty: aiortc falls back to a public STUN server otherwise)."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username = f"{int(now) + ttl_seconds}:{participant_id}"
        servers.append(
            {
                "urls": list(turn_urls),
                "username": username,
                "credential": turn_password(turn_secret, username),
            }
        )
    return servers
