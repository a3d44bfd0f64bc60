"""The byte form of reconciliation messages (``docs/protocol.md`` section 11), read strictly in one pass.

Pure and sans-I/O. A message is a version byte, for the opening message the
span, then ranges, each an upper bound, a mode byte and the mode's payload::

    message  = version:u8 (0x01) [span] range*
    span     = start:u32be length:varint            (opening only; 1 ..= 2**32)
    range    = bound mode:u8 payload
    bound    = varint v; 0 = the span's end; else rel = previous rel + v - 1,
               then plen:u8 (0 ..= 32) and plen prefix bytes (last byte non-zero)
    payload  = PASS 0 / MATCH 1: nothing
               FINGERPRINT 2: 16 bytes
               IDLIST 3: count:varint key*
               DIFF 4: listed:varint bitmap(ceil(listed/8) bytes) count:varint key*
    key      = delta:varint (relative location - previous key's, the first
               from the range's lower bound) hash(32 bytes)

Varints are unsigned LEB128 in their shortest form, at most 5 bytes. A
range's lower bound is the previous range's upper bound (the span's start
for the first). Bounds strictly increase; the end, if present, is last; a
message never ends with a PASS range nor has two PASS ranges in a row (the
rest of the span after the last range is an implicit PASS). Keys strictly
increase and lie inside their range. Anything else is refused with
``EncodingError`` after reading each byte at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from conode.dht.arcs import RING, Arc
from conode.dht.itemset import FINGERPRINT_SIZE, Bound, RelKey
from conode.errors import EncodingError

__all__ = [
    "MAX_IDS",
    "MAX_MESSAGE",
    "VERSION",
    "Diff",
    "Fingerprint",
    "IdList",
    "Match",
    "Mode",
    "Pass",
    "Range",
    "decode_message",
    "decode_opening",
    "encode_message",
    "key_cost",
    "bound_cost",
]

VERSION: Final = 0x01
MAX_MESSAGE: Final = 1 << 20
"""The largest message a reader takes (a sender's own limit is usually far lower)."""
MAX_IDS: Final = 1024
"""The most keys in one IDLIST or DIFF range."""
_HASH_SIZE: Final = 32
_VARINT_MAX_BYTES: Final = 5


class Mode(IntEnum):
    """The mode byte of a range."""

    PASS = 0
    MATCH = 1
    FINGERPRINT = 2
    IDLIST = 3
    DIFF = 4


@dataclass(frozen=True, slots=True)
class Pass:
    """Nothing said about this range (not answered yet, or not asked)."""

    upper: Bound


@dataclass(frozen=True, slots=True)
class Match:
    """An answer: the sender holds what the ask described here; nothing more to do."""

    upper: Bound


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An ask: the fingerprint of what the sender holds in this range."""

    upper: Bound
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class IdList:
    """An ask: every item the sender holds in this range, in order."""

    upper: Bound
    keys: tuple[RelKey, ...]


@dataclass(frozen=True, slots=True)
class Diff:
    """An answer to an IdList of ``listed`` keys: which of them the sender lacks, and the keys it has beyond them."""

    upper: Bound
    listed: int
    lacks: tuple[int, ...]
    """Positions in the IdList's keys, increasing."""
    keys: tuple[RelKey, ...]


Range = Pass | Match | Fingerprint | IdList | Diff


# -- writing ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def bound_cost(bound: Bound) -> int:
    """The most bytes ``bound`` can take as an upper bound, whatever precedes it."""
    return _VARINT_MAX_BYTES + 1 + len(bound[1])


def key_cost(count: int) -> int:
    """The most bytes ``count`` keys take in an IdList or Diff, with their count."""
    return 3 + count * (_VARINT_MAX_BYTES + _HASH_SIZE)


def encode_message(span: Arc, ranges: list[Range], *, opening: bool = False) -> bytes:
    """The bytes of a message of ``ranges`` on ``span`` (with the span in front if ``opening``)."""
    out = bytearray((VERSION,))
    if opening:
        out += span.start.to_bytes(4, "big") + _varint(span.length)
    lower: Bound = (0, b"")
    for item in ranges:
        _write_bound(out, lower, item.upper, span.length)
        if isinstance(item, Pass):
            out.append(Mode.PASS)
        elif isinstance(item, Match):
            out.append(Mode.MATCH)
        elif isinstance(item, Fingerprint):
            out.append(Mode.FINGERPRINT)
            out += item.fingerprint
        elif isinstance(item, IdList):
            out.append(Mode.IDLIST)
            _write_keys(out, lower[0], item.keys)
        else:
            out.append(Mode.DIFF)
            out += _varint(item.listed)
            bitmap = bytearray((item.listed + 7) // 8)
            for index in item.lacks:
                bitmap[index // 8] |= 1 << (index % 8)
            out += bitmap
            _write_keys(out, lower[0], item.keys)
        lower = item.upper
    return bytes(out)


def _write_bound(out: bytearray, lower: Bound, upper: Bound, length: int) -> None:
    rel, prefix = upper
    if rel >= length:
        out.append(0)
        return
    out += _varint(rel - lower[0] + 1)
    out.append(len(prefix))
    out += prefix


def _write_keys(out: bytearray, rel: int, keys: tuple[RelKey, ...]) -> None:
    out += _varint(len(keys))
    for key_rel, digest in keys:
        out += _varint(key_rel - rel)
        out += digest
        rel = key_rel


# -- reading ---------------------------------------------------------------------------------


class _Reader:
    """A cursor over message bytes; every read checks there are bytes enough."""

    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def more(self) -> bool:
        return self.at < len(self.data)

    def take(self, count: int, what: str) -> bytes:
        end = self.at + count
        if end > len(self.data):
            raise EncodingError(f"message ends inside {what}")
        chunk = self.data[self.at : end]
        self.at = end
        return chunk

    def byte(self, what: str) -> int:
        if self.at >= len(self.data):
            raise EncodingError(f"message ends before {what}")
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self, what: str) -> int:
        at, data = self.at, self.data
        if at < len(data) and data[at] < 0x80:  # one byte: most bounds and key steps (a hot path)
            self.at = at + 1
            return data[at]
        value = shift = 0
        for count in range(_VARINT_MAX_BYTES):
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and count > 0:
                    raise EncodingError(f"{what} is not a shortest varint")
                return value
            shift += 7
        raise EncodingError(f"{what} is a varint longer than {_VARINT_MAX_BYTES} bytes")


def decode_opening(data: bytes, *, max_size: int = MAX_MESSAGE) -> tuple[Arc, list[Range]]:
    """The span and ranges of an opening message; ``EncodingError`` if it is not one, byte for byte."""
    reader = _start(data, max_size)
    start = int.from_bytes(reader.take(4, "the span's start"), "big")
    length = reader.varint("the span's length")
    if not 1 <= length <= RING:
        raise EncodingError(f"a span's length is 1 to 2**32, not {length}")
    if length == RING and start != 0:
        raise EncodingError("a span of the whole ring starts at 0")
    span = Arc(start, length)
    return span, _ranges(reader, length)


def decode_message(data: bytes, span: Arc, *, max_size: int = MAX_MESSAGE) -> list[Range]:
    """The ranges of a message on ``span`` after the opening; ``EncodingError`` if it is not one."""
    return _ranges(_start(data, max_size), span.length)


def _start(data: bytes, max_size: int) -> _Reader:
    if not isinstance(data, bytes):
        raise TypeError(f"a message is bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise EncodingError(f"a message of {len(data)} bytes is over the limit of {max_size}")
    reader = _Reader(data)
    version = reader.byte("the version")
    if version != VERSION:
        raise EncodingError(f"reconciliation version {version} is not supported (this node speaks {VERSION})")
    return reader


def _ranges(reader: _Reader, length: int) -> list[Range]:
    found: list[Range] = []
    lower: Bound = (0, b"")
    while reader.more():
        if lower[0] >= length:
            raise EncodingError("a range follows the span's end")
        upper = _read_bound(reader, lower, length)
        mode = reader.byte("a mode")
        item: Range
        if mode == Mode.PASS:
            if found and isinstance(found[-1], Pass):
                raise EncodingError("two PASS ranges in a row")
            item = Pass(upper)
        elif mode == Mode.MATCH:
            item = Match(upper)
        elif mode == Mode.FINGERPRINT:
            item = Fingerprint(upper, reader.take(FINGERPRINT_SIZE, "a fingerprint"))
        elif mode == Mode.IDLIST:
            item = IdList(upper, _read_keys(reader, lower, upper))
        elif mode == Mode.DIFF:
            listed = reader.varint("a DIFF's listed count")
            if listed > MAX_IDS:
                raise EncodingError(f"a DIFF answers at most {MAX_IDS} keys, not {listed}")
            bitmap = reader.take((listed + 7) // 8, "a DIFF's bitmap")
            lacks = tuple(i for i in range(listed) if bitmap[i // 8] >> (i % 8) & 1)
            if listed % 8 and bitmap[-1] >> (listed % 8):
                raise EncodingError("a DIFF's bitmap has bits set past its listed count")
            item = Diff(upper, listed, lacks, _read_keys(reader, lower, upper))
        else:
            raise EncodingError(f"unknown range mode {mode}")
        found.append(item)
        lower = upper
    if found and isinstance(found[-1], Pass):
        raise EncodingError("a message ends with a PASS range (it is implicit)")
    return found


def _read_bound(reader: _Reader, lower: Bound, length: int) -> Bound:
    step = reader.varint("a bound")
    if step == 0:
        return (length, b"")
    rel = lower[0] + step - 1
    if rel >= length:
        raise EncodingError("a bound lies past the span's end")
    size = reader.byte("a bound's prefix length")
    if size > _HASH_SIZE:
        raise EncodingError(f"a bound's prefix is at most {_HASH_SIZE} bytes, not {size}")
    prefix = reader.take(size, "a bound's prefix")
    if prefix and prefix[-1] == 0:
        raise EncodingError("a bound's prefix ends in a zero byte (not its shortest form)")
    upper = (rel, prefix)
    if upper <= lower:
        raise EncodingError("bounds do not increase")
    return upper


def _read_keys(reader: _Reader, lower: Bound, upper: Bound) -> tuple[RelKey, ...]:
    count = reader.varint("a key count")
    if count > MAX_IDS:
        raise EncodingError(f"a range lists at most {MAX_IDS} keys, not {count}")
    keys: list[RelKey] = []
    rel = lower[0]
    for _ in range(count):
        rel += reader.varint("a key's location")
        key = (rel, reader.take(_HASH_SIZE, "a key's hash"))
        in_order = key > keys[-1] if keys else key >= lower
        if not (in_order and key < upper):
            raise EncodingError("keys are not increasing inside their range")
        keys.append(key)
    return tuple(keys)
