"""Token encryption at rest (DESIGN §7): AES-256-GCM under a key ring.

A stored value looks like ``v1:<kid>:<base64url(nonce || ciphertext+tag)>``. The
associated data binds it to its row and field, so a ciphertext copied into another
row or column does not decrypt. Key material comes from a :class:`KeyProvider`; the
environment key ring is one, a KMS-backed provider can replace it without touching
callers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.settings import Settings

FORMAT_VERSION = "v1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The value is malformed, tampered with, bound to another row, or its key is unknown."""


class KeyProvider(Protocol):
    """Where data keys come from: the env key ring today, a KMS tomorrow."""

    def current_key_id(self) -> str:
        """The id of the key new values are encrypted under."""

    def key(self, key_id: str) -> bytes:
        """The 32-byte key for ``key_id``; raise ``KeyError`` if unknown."""


class EnvKeyRing:
    """Keys from ``TOKEN_ENCRYPTION_KEYS``: the first encrypts, all decrypt."""

    def __init__(self, ring: Iterable[tuple[str, bytes]]):
        self._keys = dict(ring)
        self._current = next(iter(self._keys))

    def current_key_id(self) -> str:
        return self._current

    def key(self, key_id: str) -> bytes:
        return self._keys[key_id]


def associated_data(row_id: str, field: str) -> bytes:
    return f"{row_id}|{field}".encode()


class TokenCipher:
    """Encrypts and decrypts token strings bound to a row id and field name."""

    def __init__(self, provider: KeyProvider):
        self.provider = provider

    def encrypt(self, plaintext: str, *, row_id: str, field: str) -> str:
        kid = self.provider.current_key_id()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.provider.key(kid)).encrypt(nonce, plaintext.encode(), associated_data(row_id, field))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT_VERSION}:{kid}:{payload}"

    def decrypt(self, value: str, *, row_id: str, field: str) -> str:
        try:
            version, kid, payload = value.split(":", 2)
        except ValueError as exc:
            raise DecryptionError("malformed ciphertext") from exc
        if version != FORMAT_VERSION:
            raise DecryptionError("unknown ciphertext version")
        try:
            key = self.provider.key(kid)
        except KeyError as exc:
            raise DecryptionError(f"unknown key id {kid!r}") from exc
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError as exc:
            raise DecryptionError("malformed ciphertext") from exc
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, sealed, associated_data(row_id, field)).decode()
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("ciphertext does not verify for this row and field") from exc


def cipher_from_settings(settings: Settings) -> TokenCipher:
    return TokenCipher(EnvKeyRing(settings.token_encryption_keys))
