"""Deterministic CBOR (RFC 8949 section 4.2) for everything conode hashes or signs.

The data model is deliberately small, so that every value has exactly one
byte form and every byte form is checked on the way in:

- ``None``, ``bool``, ``int`` in ``[-2**64, 2**64 - 1]`` (CBOR major types 0/1),
  ``bytes``, ``str``, ``list`` (``tuple`` is accepted when encoding), and
  ``dict`` whose keys are ``str``.
- No floats (amounts are integers in minor units), no tags, no undefined or
  other simple values, no indefinite lengths, no duplicate map keys.

Map keys are text only: for text keys, cbor2's canonical order (length first)
and RFC 8949's bytewise order of the encoded keys coincide, so the encoder
can be cbor2's fast C one.

``decode`` checks key order while it walks the decoded value, then re-encodes
with cbor2's plain encoder, which keeps each map's order as read: with keys in
order, plain and canonical encodings are the same bytes, and the plain one is
twice as fast (the re-encode is on the hot path of every validation).

``decode`` is strict: it rejects anything over a size or depth limit, any
value outside the model, and any bytes that are not exactly what ``encode``
would write for the value they hold (non-shortest integers and lengths,
unsorted keys, trailing bytes). A decode error is always ``EncodingError``
with a readable reason, never a crash of the decoder.

Hostile bytes are refused in time linear in their size. cbor2 decodes many
tags itself (shared references, decimals, bigfloats, regular expressions,
MIME, ...), some at a cost exponential in the input (28/29 shared references
make a value that is a DAG: a 185-byte input held 2**20 paths for the walk
and the re-encode). ``decode`` passes cbor2 a table of tag decoders that
refuses every tag number as cbor2 looks it up, which cbor2 does when it
reads the tag's head, before reading what the tag holds: no tag decoder of
cbor2's ever runs, and without tags no value is shared. Depth is bounded by
cbor2's ``max_depth`` as it reads, indefinite lengths are refused at their
head, and a declared length costs nothing until its bytes are there (cbor2
reads long strings in 64 KiB chunks and grows arrays item by item), so the
rest of the work is one pass over the value.

That pass costs per item, so the number of items is bounded too: a value
holds at most ``max_items`` CBOR items (every head counts: each map key and
value, each array item, each container), of which at most
``MAX_CONTAINERS`` arrays and maps. Bytes too short to hold more are not
counted; longer ones are counted first by ``_over_limits``, which reads only
heads, steps over string payloads and stops at the first head past a limit:
a megabyte of one-byte items is refused after ``max_items`` steps instead of
being built into a million Python objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Final, NoReturn

import cbor2

from conode.errors import EncodingError

__all__ = [
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SIZE",
    "Value",
    "decode",
    "encode",
]

Value = Any
"""A value of the conode data model (see the module docstring)."""

MAX_SIZE: Final = 1 << 20
"""Largest encoded value accepted by default: 1 MiB."""

MAX_DEPTH: Final = 32
"""Deepest nesting of lists and maps accepted."""

MAX_ITEMS: Final = 1 << 16
"""Most CBOR items (heads) in one value accepted by default: 65 536."""

MAX_CONTAINERS: Final = 1 << 13
"""Most arrays and maps in one value: 8 192 (each costs the decoder's walk a call)."""

_INT_MIN: Final = -(1 << 64)
_INT_MAX: Final = (1 << 64) - 1


def encode(value: Value) -> bytes:
    """Encode ``value`` to its one canonical CBOR form; ``TypeError``/``ValueError`` if outside the model."""
    _check(value, 0, encoding=True)
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, *, max_size: int = MAX_SIZE, max_items: int = MAX_ITEMS) -> Value:
    """Decode canonical CBOR, rejecting every other byte form with ``EncodingError``."""
    if not isinstance(data, bytes):
        raise TypeError(f"decode takes bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise EncodingError(f"{len(data)} bytes is over the limit of {max_size} bytes")
    if not data:
        raise EncodingError("no bytes to decode")
    if len(data) > min(max_items, MAX_CONTAINERS):  # shorter bytes cannot hold more
        too_many = _over_limits(data, max_items, MAX_CONTAINERS)
        if too_many is not None:
            raise EncodingError(too_many)
    try:
        value = cbor2.loads(
            data,
            semantic_decoders=_NO_TAGS,
            max_depth=MAX_DEPTH + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except EncodingError:
        raise
    except Exception as exc:  # the seam to cbor2: every failure becomes one readable error
        if isinstance(exc.__cause__, _TagRefused):  # cbor2 wraps what a tag decoder raised
            raise EncodingError(str(exc.__cause__)) from exc
        raise EncodingError(f"malformed CBOR: {_first_line(exc)}") from exc
    try:
        _check(value, 0, encoding=False)
    except (TypeError, ValueError) as exc:
        raise EncodingError(str(exc)) from exc
    if cbor2.dumps(value) != data:  # keys are in order (checked above), so this is canonical
        raise EncodingError("not the canonical encoding of the value it holds")
    return value


class _TagRefused(Exception):
    """Raised from inside cbor2 when it looks up a tag's decoder (not a ``LookupError``,
    which would make cbor2 fall back to its own decoders)."""


class _NoTags(Mapping[int, Any]):
    """cbor2's table of tag decoders, refusing every tag as soon as cbor2 looks it up.

    cbor2 looks a tag number up when it reads the tag's head, before it reads
    the tagged item, and passes on any error that is not a ``LookupError``.
    """

    def __getitem__(self, tag: int) -> NoReturn:
        raise _TagRefused(f"CBOR tag {tag} is not allowed")

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[int]:
        return iter(())


_NO_TAGS: Final = _NoTags()


def _head_tables() -> tuple[list[int], list[int]]:
    """For each initial byte: how far its item's head (and a string's payload) reaches when the
    argument is inside the byte (0 otherwise: an argument follows, indefinite, or a tag); and
    1 if it opens an array or a map."""
    steps, containers = [0] * 256, [0] * 256
    for initial in range(256):
        major, info = initial >> 5, initial & 31
        if info < 24 and major != 6:  # a tag ends the count (see _over_limits)
            steps[initial] = 1 + (info if major in (2, 3) else 0)
        containers[initial] = int(major in (4, 5))
    return steps, containers


_HEAD_STEPS, _OPENS_CONTAINER = _head_tables()


def _over_limits(data: bytes, max_items: int, max_containers: int) -> str | None:
    """Why ``data`` holds too many items or containers, or None; never reading past the limit.

    Items are laid out depth first, so walking the heads in order visits
    every item without tracking nesting; a string's payload is stepped over.
    A tag or an indefinite or reserved head ends the walk: cbor2 refuses it
    at that head, before anything after it is built.
    """
    pos, end, items, containers = 0, len(data), 0, 0
    steps, opens = _HEAD_STEPS, _OPENS_CONTAINER
    while pos < end:
        initial = data[pos]
        items += 1
        containers += opens[initial]
        if items > max_items:
            return f"more than {max_items} CBOR items"
        if containers > max_containers:
            return f"more than {max_containers} arrays and maps"
        step = steps[initial]
        if step:
            pos += step
            continue
        info = initial & 31
        if initial >> 5 == 6 or info > 27:
            return None  # a tag, an indefinite length or a reserved head: cbor2 refuses it
        if info == 24:
            argument, pos = data[pos + 1] if pos + 1 < end else 0, pos + 2
        else:
            size = 1 << (info - 24)
            argument, pos = int.from_bytes(data[pos + 1 : pos + 1 + size]), pos + 1 + size
        if initial >> 5 in (2, 3):
            pos += argument
    return None


_SCALARS: Final = frozenset({str, bytes, bool, type(None)})


def _check(value: Value, depth: int, *, encoding: bool) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is inside the data model.

    Scalars inside containers are checked inline, so only containers recurse:
    this walk runs on every decode and is on the hot path of chain verification.
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        _check_int(value)
        return
    if kind is list or (encoding and kind is tuple):
        items = value
    elif kind is dict:
        for key in value:
            if type(key) is not str:
                raise TypeError(f"map keys must be text, not {type(key).__name__}")
        if not encoding and not _in_key_order(tuple(value)):
            raise ValueError("map keys are not in canonical order")
        items = value.values()
    elif kind is float:
        raise TypeError("floats are not allowed (use integers in minor units)")
    else:
        raise TypeError(f"{kind.__name__} is not a conode CBOR value")
    if depth >= MAX_DEPTH and items:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    for item in items:
        item_kind = type(item)
        if item_kind in _SCALARS:
            continue
        if item_kind is int:
            _check_int(item)
        else:
            _check(item, depth + 1, encoding=encoding)


def _check_int(value: int) -> None:
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"integer {value} is outside the 64-bit CBOR range")


_KEY_ORDERS: Final[dict[tuple[str, ...], bool]] = {}
_KEY_ORDERS_KEPT: Final = 4096


def _in_key_order(keys: tuple[str, ...]) -> bool:
    """True if the keys are in RFC 8949 order (bytewise, of their encodings), strictly.

    Entry types have few key sets, so answers are remembered (a bounded number:
    a peer sending ever-new key sets only costs the sort).
    """
    known = _KEY_ORDERS.get(keys)
    if known is None:
        encoded = [cbor2.dumps(key) for key in keys]
        known = all(a < b for a, b in itertools.pairwise(encoded))
        if len(_KEY_ORDERS) < _KEY_ORDERS_KEPT:
            _KEY_ORDERS[keys] = known
    return known


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
