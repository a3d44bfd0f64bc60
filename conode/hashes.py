"""Typed blake2b-256 hashes and agent keys, and their printable form.

A hash is 32 bytes of blake2b-256 taken with a per-kind personalisation, so
the same bytes hashed as an entry and as an action give unrelated digests.
On the wire and in CBOR a typed hash is 33 bytes: one kind byte, then the
32 bytes. An agent's "hash" is its Ed25519 public key itself.

The printable form is ``<prefix>_<base32>``, e.g. ``agt_mfrgg...``: the
prefix names the kind, and the base32 text (RFC 4648, lower case, no padding)
holds the 32 bytes followed by a 4-byte blake2b checksum, so a mistyped
character is caught instead of naming some other agent.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, Self, TypeVar

from conode.errors import EncodingError

__all__ = [
    "ActionHash",
    "AgentKey",
    "BundleHash",
    "CharterHash",
    "EntryHash",
    "HashKind",
    "OpHash",
    "TypedHash",
    "MIN_PREFIX",
    "blake2b_256",
    "parse_any",
    "resolve",
]

DIGEST_SIZE: Final = 32
_CHECKSUM_SIZE: Final = 4


class HashKind(IntEnum):
    """The first byte of every typed hash on the wire."""

    ACTION = 0x01
    ENTRY = 0x02
    AGENT = 0x03
    OP = 0x04
    CHARTER = 0x05
    BUNDLE = 0x06


_PREFIX: Final = {
    HashKind.ACTION: "act",
    HashKind.ENTRY: "ent",
    HashKind.AGENT: "agt",
    HashKind.OP: "op",
    HashKind.CHARTER: "chr",
    HashKind.BUNDLE: "app",
}
_PERSON: Final = {kind: f"conode-{name}".encode() for kind, name in _PREFIX.items()}


def blake2b_256(kind: HashKind, data: bytes) -> bytes:
    """The 32-byte digest of ``data`` as a hash of ``kind`` (domain-separated)."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE, person=_PERSON[kind]).digest()


@dataclass(frozen=True, slots=True, order=True)
class TypedHash:
    """32 bytes that name one kind of thing; subclasses fix the kind."""

    raw: bytes
    KIND: ClassVar[HashKind]

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != DIGEST_SIZE:
            raise ValueError(f"a {type(self).__name__} is {DIGEST_SIZE} bytes")

    @classmethod
    def of(cls, data: bytes) -> Self:
        """The hash of ``data`` as this kind."""
        return cls._trusted(blake2b_256(cls.KIND, data))

    @classmethod
    def _trusted(cls, raw: bytes) -> Self:
        """An instance of 32 bytes known to be right (skips the dataclass __init__: a hot path)."""
        typed = object.__new__(cls)
        object.__setattr__(typed, "raw", raw)
        return typed

    def to_bytes(self) -> bytes:
        """The 33-byte wire form: kind byte, then the 32 bytes."""
        return bytes((self.KIND,)) + self.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Read the 33-byte wire form; ``EncodingError`` if it is another kind or length."""
        if type(data) is not bytes or len(data) != DIGEST_SIZE + 1:
            raise EncodingError(f"a {cls.__name__} is {DIGEST_SIZE + 1} bytes on the wire")
        if data[0] != cls.KIND:
            raise EncodingError(f"expected {_describe(cls.KIND)}, got {_describe(data[0])}")
        return cls._trusted(data[1:])  # the length is checked above

    def __str__(self) -> str:
        body = self.raw + _checksum(self.KIND, self.raw)
        return f"{_PREFIX[self.KIND]}_{base64.b32encode(body).decode().rstrip('=').lower()}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def short(self) -> str:
        """A short form for tables: prefix and the first 8 characters."""
        return str(self)[: len(_PREFIX[self.KIND]) + 9]

    @classmethod
    def parse(cls, text: str) -> Self:
        """Read the printable form back; ``EncodingError`` with the reason if it is not one."""
        kind, raw = _parse(text)
        if kind != cls.KIND:
            raise EncodingError(f"expected {_describe(cls.KIND)}, got {_describe(kind)}")
        return cls(raw)


class ActionHash(TypedHash):
    """The hash of an action's canonical bytes."""

    __slots__ = ()
    KIND = HashKind.ACTION


class EntryHash(TypedHash):
    """The hash of an entry's canonical bytes."""

    __slots__ = ()
    KIND = HashKind.ENTRY


class AgentKey(TypedHash):
    """An agent's Ed25519 public key (its 32 bytes, not a digest)."""

    __slots__ = ()
    KIND = HashKind.AGENT


class OpHash(TypedHash):
    """The hash of a DHT op."""

    __slots__ = ()
    KIND = HashKind.OP


class CharterHash(TypedHash):
    """The hash of a charter: the network id."""

    __slots__ = ()
    KIND = HashKind.CHARTER


class BundleHash(TypedHash):
    """The hash of an app bundle's bytes."""

    __slots__ = ()
    KIND = HashKind.BUNDLE


_CLASSES: Final[dict[int, type[TypedHash]]] = {
    cls.KIND: cls for cls in (ActionHash, EntryHash, AgentKey, OpHash, CharterHash, BundleHash)
}


def parse_any(text: str) -> TypedHash:
    """Read any printable typed hash, returning the class its prefix names."""
    kind, raw = _parse(text)
    return _CLASSES[kind](raw)


_H = TypeVar("_H", bound=TypedHash)
MIN_PREFIX: Final = 8
"""The fewest base32 characters a shortened hash or key may give (40 bits)."""
_B32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_ELLIPSIS: Final = ("…", "...")


def resolve(cls: type[_H], text: str, between: Callable[[bytes, bytes], Iterable[bytes]]) -> _H:
    """The one resolver of printable hashes and keys: a whole one (``cls.parse``), or a unique
    prefix of at least ``MIN_PREFIX`` base32 characters (``act_v3ndq2xa``, also with a trailing
    ``…`` as tables print them) among what ``between(lo, hi)`` finds: the raw values held in
    [lo, hi] (at most two are needed). ``EncodingError`` naming what is wrong otherwise."""
    if not isinstance(text, str):
        raise TypeError("resolve takes a str")
    stripped = text.strip()
    for tail in _ELLIPSIS:
        stripped = stripped.removesuffix(tail)
    prefix, sep, body = stripped.lower().partition("_")
    whole = len(base64.b32encode(bytes(DIGEST_SIZE + _CHECKSUM_SIZE)).rstrip(b"="))
    if not sep or prefix != _PREFIX[cls.KIND] or len(body) >= whole or not stripped.isascii():
        return cls.parse(text)
    if len(body) < MIN_PREFIX:
        raise EncodingError(
            f"{text!r} is too short: give at least {MIN_PREFIX} characters after {prefix}_"
        )
    if any(c not in _B32 for c in body):
        raise EncodingError(f"{text!r} has characters outside base32")
    digits = body[: DIGEST_SIZE * 8 // 5]  # the characters that hold only the 32 bytes' bits
    value = 0
    for c in digits:
        value = value * 32 + _B32.index(c)
    free = DIGEST_SIZE * 8 - len(digits) * 5
    lo = (value << free).to_bytes(DIGEST_SIZE, "big")
    hi = ((value << free) | ((1 << free) - 1)).to_bytes(DIGEST_SIZE, "big")
    candidates = list(itertools.islice(between(lo, hi), 2))
    # beyond 51 characters the text also spells the last bit and the checksum: compare it whole
    found = [raw for raw in candidates if str(cls(raw))[len(prefix) + 1 :].startswith(body)]
    if not found:
        raise EncodingError(f"nothing held here is {_describe(cls.KIND)} starting {text!r}")
    if len(found) > 1:
        raise EncodingError(
            f"{text!r} is the start of more than one {_describe(cls.KIND).split(' ', 1)[1]} "
            "held here: give more characters"
        )
    return cls(found[0])


def _checksum(kind: int, raw: bytes) -> bytes:
    return hashlib.blake2b(bytes((kind,)) + raw, digest_size=_CHECKSUM_SIZE).digest()


def _describe(kind: int) -> str:
    try:
        return {
            HashKind.ACTION: "an action hash",
            HashKind.ENTRY: "an entry hash",
            HashKind.AGENT: "an agent key",
            HashKind.OP: "an op hash",
            HashKind.CHARTER: "a charter hash",
            HashKind.BUNDLE: "an app bundle hash",
        }[HashKind(kind)]
    except ValueError:
        return f"unknown hash kind {kind:#04x}"


def _parse(text: str) -> tuple[HashKind, bytes]:
    if not isinstance(text, str):
        raise TypeError("parse takes a str")
    # str.lower/upper map some non-ASCII letters (KELVIN SIGN, dotless i) onto ASCII ones
    if not text.isascii():
        raise EncodingError(f"{text!r} is not a conode hash (it has non-ASCII characters)")
    prefix, sep, body = text.strip().lower().partition("_")
    kinds = {name: kind for kind, name in _PREFIX.items()}
    if not sep or prefix not in kinds:
        raise EncodingError(f"{text!r} is not a conode hash (expected agt_…, act_…, ent_…)")
    kind = kinds[prefix]
    try:
        padded = body.upper() + "=" * (-len(body) % 8)
        data = base64.b32decode(padded)
    except ValueError as exc:
        raise EncodingError(f"{text!r} has characters outside base32") from exc
    if len(data) != DIGEST_SIZE + _CHECKSUM_SIZE:
        raise EncodingError(f"{text!r} is the wrong length for {_describe(kind)}")
    # b32decode ignores the last character's unused low bits: without this, 4 texts name one hash
    if base64.b32encode(data).decode().rstrip("=").lower() != body:
        raise EncodingError(f"{text!r} is not a canonical base32 form (a typo?)")
    raw, check = data[:DIGEST_SIZE], data[DIGEST_SIZE:]
    if _checksum(kind, raw) != check:
        raise EncodingError(f"{text!r} fails its checksum (a typo?)")
    return kind, raw
