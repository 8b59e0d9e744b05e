"""Payload codecs: how stored values (inputs, outputs, step outputs, errors, messages, events,
stream items) look at rest. Compressed, encrypted with AES-GCM, or both; none by default.

A codec works on the JSON text serialization produced (never on the values), and its stored
form always begins with ``~``, which no JSON text begins with: rows written before a codec was
configured (plain JSON) are read back as they are, so a table may mix both during a rollout.

    ~z:<base64 of zlib>                      CompressionCodec (only when it saves space)
    ~aes-gcm:<key id>:<base64 of nonce+ct>   AesGcmCodec (a 12-byte random nonce per value)
    ~aes-gcm-subject:<data key id>:<base64>  SubjectCodec: the workflow's subject's own data key

A text that cannot be decoded (its key id is unknown, it fails authentication) raises
PayloadUndecodableError; the store wrapper turns it into an ``UNDECODABLE`` marker text that
displays show as ``{"$undecodable": reason}`` and the engine refuses to execute with.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
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
SUBJECT_FORM = "~aes-gcm-subject:"  # a value sealed with its subject's data key
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce
MIN_COMPRESS_CHARS = 256  # shorter texts seldom shrink by more than the base64 costs


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """A subject's data key as the store found it: ``key`` None when it has none (erased)."""

    subject: str
    key_id: str | None
    key: bytes | None
    why: str | None = None  # why there is no key, when it is not that it was erased


@dataclass(frozen=True, slots=True)
class CodecContext:
    """What a value is, for a codec that cares: the workflow it belongs to (None: not known at
    the call), its kind ("input", "output", "step output", "error", "message", "event",
    "stream") and, for a SubjectCodec, the data key of the workflow's subject (None: the
    workflow has no subject, or the codec has no use for one)."""

    workflow_id: str | None
    kind: str
    subject_key: SubjectKey | None = None


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


class SubjectCodec:
    """AES-256-GCM with a data key per subject (a customer given at start): erasing the key
    (``app.erase_subject``) makes every payload of that subject undecodable, everywhere.

    Data keys are random, created on a subject's first value and stored by the store WRAPPED
    (encrypted) under the keyring's current master key, so the database alone reads nothing.
    A workflow without a subject (and a message sent by key) is encrypted with the keyring's
    current key, as AesGcmCodec does. The store wrapper (EncodedStore) finds each workflow's
    subject and its key and passes them in ``CodecContext.subject_key``.
    """

    def __init__(self, keyring: Keyring) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.keyring = keyring
        self.fallback = AesGcmCodec(keyring)
        self._aesgcm = AESGCM

    # -- data keys, wrapped under the master key ---------------------------------------------
    def new_key(self, subject: str) -> tuple[str, str]:
        """A new data key for ``subject``: (its id, the key wrapped under the current master
        key as ``<master key id>:<base64 of nonce + sealed key>``)."""
        key_id = uuid.uuid4().hex[:16]
        return key_id, self._wrap(subject, key_id, os.urandom(KEY_BYTES))

    def _wrap(self, subject: str, key_id: str, key: bytes) -> str:
        master_id = self.keyring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aesgcm(self.keyring.keys[master_id]).encrypt(
            nonce, key, _aad(subject, key_id)
        )
        return f"{master_id}:{base64.b64encode(nonce + sealed).decode()}"

    def rewrap(self, subject: str, key_id: str, wrapped: str) -> str | None:
        """The same data key wrapped under the keyring's current master key (a new nonce),
        or None when it is wrapped under it already. The key and its id do not change, so
        every payload sealed with it reads as before. PayloadUndecodableError as ``unwrap``
        (its master key is not in the keyring, or the row was tampered with)."""
        if wrapped.partition(":")[0] == self.keyring.current:
            return None
        return self._wrap(subject, key_id, self.unwrap(subject, key_id, wrapped))

    def unwrap(self, subject: str, key_id: str, wrapped: str) -> bytes:
        """The data key stored wrapped; PayloadUndecodableError when its master key is not in
        the keyring (or the row was tampered with)."""
        from cryptography.exceptions import InvalidTag

        master_id, _, data = wrapped.partition(":")
        master = self.keyring.keys.get(master_id)
        if master is None:
            raise PayloadUndecodableError(
                f"the data key of subject {subject} is wrapped with master key {master_id!r},"
                " which is not in the keyring",
                reason="unknown key",
                key_id=master_id,
            )
        try:
            raw = base64.b64decode(data)
            return self._aesgcm(master).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(subject, key_id)
            )
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise PayloadUndecodableError(
                f"the data key of subject {subject} does not unwrap", reason="corrupt"
            ) from exc

    # -- values ----------------------------------------------------------------------------
    def encode(self, text: str, context: CodecContext) -> str:
        found = context.subject_key
        if found is None:
            return self.fallback.encode(text, context)
        if found.key is None or found.key_id is None:
            raise PayloadUndecodableError(  # the store creates a key before encoding
                f"subject {found.subject} has no data key", reason="erased"
            )
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aesgcm(found.key).encrypt(nonce, text.encode(), None)
        return f"{SUBJECT_FORM}{found.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decode(self, stored: str, context: CodecContext) -> str:
        if not stored.startswith(SUBJECT_FORM):
            return self.fallback.decode(stored, context)
        from cryptography.exceptions import InvalidTag

        key_id, _, data = stored[len(SUBJECT_FORM) :].partition(":")
        found = context.subject_key
        if found is None or found.key is None or found.key_id != key_id:
            whose = "its subject" if found is None else f"subject {found.subject}"
            why = found.why if found is not None and found.key is None else None
            raise PayloadUndecodableError(
                why or f"the data key of {whose} was erased", reason="erased", key_id=key_id
            )
        try:
            raw = base64.b64decode(data)
            return (
                self._aesgcm(found.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
            )
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise PayloadUndecodableError(
                f"the {context.kind} does not decrypt with the data key of subject {found.subject}",
                reason="corrupt",
                key_id=key_id,
            ) from exc


def _aad(subject: str, key_id: str) -> bytes:
    """What a wrapped key is bound to: a row cannot be moved to another subject."""
    return f"{subject}\n{key_id}".encode()


def subject_codec(codec: PayloadCodec) -> SubjectCodec | None:
    """The SubjectCodec in ``codec`` (itself, or one of a ChainCodec's), if any."""
    if isinstance(codec, SubjectCodec):
        return codec
    if isinstance(codec, ChainCodec):
        for inner in codec.codecs:
            found = subject_codec(inner)
            if found is not None:
                return found
    return None
