"""Patient identity at rest: AES-GCM over a small key ring.

`TELMI_DATA_KEY` holds one or more keys, `id:base64url(32 bytes)`, comma separated, the first
being the one new rows are sealed with; the others still open older rows until `telmi keys
rotate` has re-sealed them. Each sealed row stores its key id beside the ciphertext, and the
associated data binds a ciphertext to its row's owner, so it cannot be moved to another
facility's row. Outside production, without a key, one is derived from the secret key (id
"dev"), so a developer's database is still never in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_KEY_ID = "dev"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_NONCE = 12


class VaultError(ValueError):
    """A key setting that cannot be used, or a ciphertext no key of the ring opens."""


def parse_keys(raw: str) -> tuple[tuple[str, bytes], ...]:
    """`id:key,id:key` to pairs, first current; raises VaultError naming what is wrong."""
    keys: list[tuple[str, bytes]] = []
    for index, part in enumerate(p.strip() for p in raw.split(",") if p.strip()):
        key_id, sep, encoded = part.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise VaultError(
                f"key {index + 1}: expected id:base64url-key, id of 1-16 [A-Za-z0-9_-]"
            )
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            raise VaultError(f"key {key_id!r}: not base64url") from None
        if len(key) != 32:
            raise VaultError(f"key {key_id!r}: must be 32 bytes (AES-256), got {len(key)}")
        if any(key_id == k for k, _ in keys):
            raise VaultError(f"key {key_id!r}: listed twice")
        keys.append((key_id, key))
    return tuple(keys)


def generate_key(key_id: str) -> str:
    """A fresh `id:key` entry for TELMI_DATA_KEY."""
    if not _KEY_ID.match(key_id):
        raise VaultError("key id: 1-16 characters among A-Z a-z 0-9 _ -")
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


@dataclass(frozen=True)
class Vault:
    keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    # For keyed digests (an INS to find a duplicate, a patient in the act log): they must
    # survive a key rotation, so they come from the secret key, not from the ring.
    secret: str = field(repr=False)

    @classmethod
    def from_settings(cls, data_key: str, secret_key: str, *, keep_dev: bool = True) -> Vault:
        """The ring of TELMI_DATA_KEY; outside production the derived development key stays
        in it, last, so a database begun without a key can be rotated onto a real one."""
        derived = hmac.new(secret_key.encode(), b"telmi data key v1", hashlib.sha256).digest()
        dev = ((DEV_KEY_ID, derived),)
        if not data_key:
            return cls(dev, secret_key)
        keys = parse_keys(data_key)
        if keep_dev and all(k != DEV_KEY_ID for k, _ in keys):
            keys += dev
        return cls(keys, secret_key)

    @property
    def current(self) -> str:
        return self.keys[0][0]

    def _key(self, key_id: str) -> bytes:
        for kid, key in self.keys:
            if kid == key_id:
                return key
        raise VaultError(f"no key {key_id!r} in TELMI_DATA_KEY: it was removed before rotation")

    def seal(self, data: dict[str, Any], aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) of the JSON of `data`."""
        nonce = os.urandom(_NONCE)
        plain = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return self.current, nonce + AESGCM(self._key(self.current)).encrypt(nonce, plain, aad)

    def open(self, key_id: str, sealed: bytes, aad: bytes) -> dict[str, Any]:
        try:
            plain = AESGCM(self._key(key_id)).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except InvalidTag:
            raise VaultError("ciphertext refused: wrong key or row") from None
        value = json.loads(plain)
        assert isinstance(value, dict)
        return value
