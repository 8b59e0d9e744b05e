"""Payload codecs: how stored values (inputs, outputs, step outputs, errors, messages, events,
stream items) look at rest. Compressed, encrypted with AES-GCM, or both; none by default.

A codec works on the JSON text serialization produced (never on the values), and its stored
form always begins with ``~``, which no JSON text begins with: rows written before a codec was
configured (plain JSON) are read back as they are, so a table may mix both during a rollout.

    ~z:<base64 of zlib>                      CompressionCodec (only when it saves space)
    ~aes-gcm:<key id>:<base64 of nonce+ct>   AesGcmCodec (a 12-byte random nonce per value)

A text that cannot be decoded (its key id is unknown, it fails authentication) raises
PayloadUndecodableError; the store wrapper turns it into an ``UNDECODABLE`` marker text that
displays show as ``{"$undecodable": reason}`` and the engine refuses to execute with.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import ConfigurationError, PayloadUndecodableError

CODEC_PREFIX = "~"  # every encoded form starts so; no JSON text does
# What a read answers for a stored value that cannot be decoded: not JSON, so every decode of
# the engine fails on it (and names it, see serialization), while displays show the reason.
UNDECODABLE = "~undecodable:"
UNDECODABLE_KEY = "$undecodable"  # displays show such a value as {UNDECODABLE_KEY: reason}
_COMPRESSED = "~z:"
_AES_GCM = "~aes-gcm:"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce
MIN_COMPRESS_CHARS = 256  # shorter texts seldom shrink by more than the base64 costs


@dataclass(frozen=True, slots=True)
class CodecContext:
    """What a value is, for a codec that cares (a future per-subject key): the workflow it
    belongs to (None: not known at the call) and its kind ("input", "output", "step output",
    "error", "message", "event", "stream")."""

    workflow_id: str | None
    kind: str


class PayloadCodec(Protocol):
    """Turns a JSON text into its stored form and back. ``decode`` must return a text it does
    not recognise (plain JSON, another codec's form) unchanged, and raise
    PayloadUndecodableError for its own form that it cannot read."""

    def encode(self, text: str, context: CodecContext) -> str: ...

    def decode(self, stored: str, context: CodecContext) -> str: ...


def undecodable_reason(text: str) -> str | None:
    """The reason carried by an UNDECODABLE marker text, or None for any other text."""
    return text[len(UNDECODABLE) :] if text.startswith(UNDECODABLE) else None


class CompressionCodec:
    """zlib, kept only when the compressed form (in base64) is shorter than the text."""

    def __init__(self, level: int = 6, min_chars: int = MIN_COMPRESS_CHARS) -> None:
        self.level = level
        self.min_chars = min_chars

    def encode(self, text: str, context: CodecContext) -> str:
        if len(text) < self.min_chars:
            return text
        packed = _COMPRESSED + base64.b64encode(zlib.compress(text.encode(), self.level)).decode()
        return packed if len(packed) < len(text) else text

    def decode(self, stored: str, context: CodecContext) -> str:
        if not stored.startswith(_COMPRESSED):
            return stored
        try:
            return zlib.decompress(base64.b64decode(stored[len(_COMPRESSED) :])).decode()
        except (zlib.error, binascii.Error, ValueError) as exc:
            raise PayloadUndecodableError(
                f"a compressed {context.kind} is corrupt: {exc}", reason="corrupt"
            ) from exc


class Keyring:
    """Data keys by id (32 bytes each) and the id new values are encrypted with.

    Rotation: add a new key and make it ``current``; keep the old ones for as long as rows
    written with them exist (they only decrypt). Removing a key makes its rows undecodable.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        for key_id, key in keys.items():
            if not key_id or ":" in key_id or CODEC_PREFIX in key_id:
                raise ConfigurationError(f"key id {key_id!r} must be non-empty, without ':' or '~'")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"key {key_id!r} is {len(key)} bytes long; AES-256-GCM keys are {KEY_BYTES}"
                )
        if current not in keys:
            raise ConfigurationError(f"the current key id {current!r} is not in the keyring")
        self.keys = dict(keys)
        self.current = current

    @staticmethod
    def generate_key() -> bytes:
        """A new random 32-byte key (keep it in a secret manager, not in code)."""
        return os.urandom(KEY_BYTES)


class AesGcmCodec:
    """AES-256-GCM with the keyring's current key; the key id is stored with each value, so
    older keys still decrypt the rows they wrote."""

    def __init__(self, keyring: Keyring) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    def encode(self, text: str, context: CodecContext) -> str:
        key_id = self.keyring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, text.encode(), None)
        return f"{_AES_GCM}{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decode(self, stored: str, context: CodecContext) -> str:
        if not stored.startswith(_AES_GCM):
            return stored
        from cryptography.exceptions import InvalidTag

        key_id, _, data = stored[len(_AES_GCM) :].partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadUndecodableError(
                f"the {context.kind} was encrypted with key {key_id!r}, which is not in the"
                " keyring",
                reason="unknown key",
                key_id=key_id,
            )
        try:
            raw = base64.b64decode(data)
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise PayloadUndecodableError(
                f"the {context.kind} does not decrypt with key {key_id!r}",
                reason="corrupt",
                key_id=key_id,
            ) from exc


class ChainCodec:
    """Codecs applied in order on encode (compress, then encrypt) and in reverse on decode."""

    def __init__(self, *codecs: PayloadCodec) -> None:
        self.codecs = codecs

    def encode(self, text: str, context: CodecContext) -> str:
        for codec in self.codecs:
            text = codec.encode(text, context)
        return text

    def decode(self, stored: str, context: CodecContext) -> str:
        for codec in reversed(self.codecs):
            stored = codec.decode(stored, context)
        return stored
