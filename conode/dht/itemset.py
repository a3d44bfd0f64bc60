"""The items a node holds, in the order range-based reconciliation walks, with O(1) range fingerprints.

An **item** is one op a node holds: an action hash at its basis location
(the author's location for a chain's records, the base's for a link index
entry, the hash's own for the record by hash). The same hash at two bases
is two items. Items are ordered by their 36-byte **key**: the location as 4
bytes big-endian, then the 32 hash bytes.

A reconciliation session covers a **span** (an ``Arc``); inside it, items
are ordered from the span's start: by *relative location*
``(loc - span.start) mod 2**32``, then hash. Positions and ranges are
described by **bounds** ``(relative location, hash prefix)``: a bound ``b``
is below every item whose (relative location, hash) is at least ``b`` with
the prefix padded by zero bytes. ``(span.length, b"")`` is the end.

The **fingerprint** of a set of items is BLAKE2b-128 (personalisation
``conode-rsr``) of the sum of their keys read as big-endian unsigned
integers modulo 2**288, written as 36 bytes big-endian, followed by the
number of items as 8 bytes big-endian. A sum is additive over disjoint
ranges, so a sorted snapshot answers any range from prefix sums in O(1) and
a store could answer from per-sector sums (Meyer's monoid fingerprints; the
count stops two different-sized sets from colliding as easily).

Two implementations of what a reconciliation reads (``SpanItems``):
``HeldItems`` is an in-memory sorted snapshot with prefix sums (tests,
benchmarks, small sets); ``IndexedItems`` reads live from an ``ItemIndex``
(the node's store, ``conode.store.heldops``: per-sector counts and sums), so
a node holding 10**6 items never lists them to reconcile.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, Protocol

from conode.dht.arcs import RING, Arc, check_location, hash_location
from conode.hashes import ActionHash

__all__ = [
    "EMPTY_FINGERPRINT",
    "FINGERPRINT_SIZE",
    "Bound",
    "HeldItems",
    "IndexedItems",
    "IndexedSpan",
    "Item",
    "ItemIndex",
    "ItemSource",
    "KeyBound",
    "RelKey",
    "SpanItems",
    "SpanView",
    "fingerprint",
]

FINGERPRINT_SIZE: Final = 16
KEY_SIZE: Final = 36
_SUM_MODULUS: Final = 1 << (8 * KEY_SIZE)
_PERSON: Final = b"conode-rsr"

Bound = tuple[int, bytes]
"""A place in a span's order: (relative location, hash prefix of 0 to 32 bytes)."""

RelKey = tuple[int, bytes]
"""An item inside a span: (relative location, the 32 hash bytes)."""

KeyBound = tuple[int, bytes]
"""A place in the ring's key order: (absolute location, hash prefix of 0 to 32 bytes)."""


@dataclass(frozen=True, slots=True, order=True)
class Item:
    """One held op: an action hash at the location of its basis."""

    loc: int
    hash: ActionHash

    def __post_init__(self) -> None:
        check_location(self.loc)
        if not isinstance(self.hash, ActionHash):
            raise TypeError("an item's hash is an ActionHash")

    @classmethod
    def at_hash(cls, h: ActionHash) -> Item:
        """The item of ``h`` at its own location (the record-by-hash op)."""
        return cls(hash_location(h), h)

    @property
    def key(self) -> bytes:
        """The 36-byte key: location big-endian, then the hash bytes."""
        return self.loc.to_bytes(4, "big") + self.hash.raw


def fingerprint(total: int, count: int) -> bytes:
    """The fingerprint of ``count`` items whose keys sum to ``total`` (see the module docstring)."""
    data = (total % _SUM_MODULUS).to_bytes(KEY_SIZE, "big") + count.to_bytes(8, "big")
    return hashlib.blake2b(data, digest_size=FINGERPRINT_SIZE, person=_PERSON).digest()


EMPTY_FINGERPRINT: Final = fingerprint(0, 0)
"""The fingerprint of no items: a peer that sends it holds nothing in that range."""


def _key_value(key: bytes) -> int:
    return int.from_bytes(key, "big")


class SpanItems(Protocol):
    """The held items on one span, addressed by position 0..n-1 in the span's order: what a
    ``Reconciler`` reads. Answers stay consistent while the holder does not change them."""

    span: Arc

    @property
    def end(self) -> Bound:
        """The bound after every item of the span."""

    def __len__(self) -> int:
        """How many items are on the span."""

    def position(self, bound: Bound) -> int:
        """How many of the span's items are below ``bound``."""

    def summary(self, first: int, last: int) -> tuple[int, int]:
        """(sum of keys, count) of the items at positions ``first`` to ``last - 1``."""

    def fingerprint(self, first: int, last: int) -> bytes:
        """The fingerprint of the items at positions ``first`` to ``last - 1``."""

    def keys(self, first: int, last: int) -> list[RelKey]:
        """The items at positions ``first`` to ``last - 1`` as (relative location, hash), in order."""

    def separator(self, at: int) -> Bound:
        """The shortest bound above the item at ``at - 1`` and not above the item at ``at`` (0 < at < n)."""


class ItemSource(Protocol):
    """Held items a reconciliation can read span by span."""

    def within(self, span: Arc) -> SpanItems:
        """The items on ``span``, in the span's order."""


class ItemIndex(Protocol):
    """Held items kept outside memory (``conode.store``): counts, key sums and keys of key ranges.

    A range ``[lo, hi)`` is in absolute key order and never wraps past location
    0; ``hi`` None is the end of the ring. Sums are of keys as numbers, unreduced.
    """

    def held_count(self, lo: KeyBound, hi: KeyBound | None) -> int:
        """How many items have keys in ``[lo, hi)``."""

    def held_summary(self, lo: KeyBound, hi: KeyBound | None) -> tuple[int, int]:
        """(sum of keys, count) of the items in ``[lo, hi)``."""

    def held_keys(
        self, lo: KeyBound, hi: KeyBound | None, offset: int, limit: int
    ) -> list[tuple[int, bytes]]:
        """The items (location, hash) in ``[lo, hi)`` from the ``offset``-th on, at most ``limit``."""


def _separator(before: RelKey, after: RelKey) -> Bound:
    """The shortest bound above ``before`` and not above ``after`` (``before < after``)."""
    (before_rel, before_hash), (rel, after_hash) = before, after
    if before_rel != rel:
        return (rel, b"")
    same = 0
    while before_hash[same] == after_hash[same]:
        same += 1
    return (rel, after_hash[: same + 1])


class HeldItems:
    """An immutable sorted snapshot of held items with prefix sums of their keys.

    Invariant: ``_keys`` is sorted and free of duplicates; ``_sums[i]`` is the
    sum of the first ``i`` keys as integers (not reduced: Python ints).
    """

    __slots__ = ("_keys", "_sums")

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._keys: list[bytes] = sorted({item.key for item in items})
        self._sums: list[int] = list(accumulate(map(_key_value, self._keys), initial=0))

    def __len__(self) -> int:
        return len(self._keys)

    def within(self, span: Arc) -> SpanView:
        """The items on ``span``, in the span's order."""
        return SpanView(self, span)


class SpanView:
    """The held items on one span, addressed by position 0..n-1 in the span's order.

    The span is one or two runs of the sorted keys (two when it wraps past
    location 0); a position maps to a run and an index in it.
    """

    __slots__ = ("_keys", "_n", "_na", "_runs", "_sums", "_wrap_rel", "span")

    def __init__(self, held: HeldItems, span: Arc) -> None:
        if span.is_empty:
            raise ValueError("a span holds at least one location")
        self.span = span
        self._keys = held._keys
        self._sums = held._sums
        keys, start, end = self._keys, span.start, span.start + span.length
        first = bisect.bisect_left(keys, start.to_bytes(4, "big"))
        if end <= RING:
            last = len(keys) if end == RING else bisect.bisect_left(keys, end.to_bytes(4, "big"))
            self._runs = ((first, last), (0, 0))
        else:
            wrapped = bisect.bisect_left(keys, (end - RING).to_bytes(4, "big"))
            self._runs = ((first, len(keys)), (0, wrapped))
        self._wrap_rel = RING - start  # relative locations from here on are in the second run
        self._na = self._runs[0][1] - self._runs[0][0]
        self._n = self._na + self._runs[1][1]

    def __len__(self) -> int:
        return self._n

    @property
    def end(self) -> Bound:
        """The bound after every item of the span."""
        return (self.span.length, b"")

    def position(self, bound: Bound) -> int:
        """How many of the span's items are below ``bound``."""
        rel, prefix = bound
        if rel >= self.span.length:
            return self._n
        if rel < self._wrap_rel:
            lo, hi = self._runs[0]
            probe = (self.span.start + rel).to_bytes(4, "big") + prefix
            return bisect.bisect_left(self._keys, probe, lo, hi) - lo
        probe = (rel - self._wrap_rel).to_bytes(4, "big") + prefix
        return self._na + bisect.bisect_left(self._keys, probe, 0, self._runs[1][1])

    def summary(self, first: int, last: int) -> tuple[int, int]:
        """(sum of keys, count) of the items at positions ``first`` to ``last - 1``."""
        sums = self._sums
        if last <= self._na:  # the common case: all in the first run (a hot path)
            start = self._runs[0][0]
            return sums[start + last] - sums[start + first], last - first
        total = 0
        for lo, hi in self._slices(first, last):
            total += sums[hi] - sums[lo]
        return total, last - first

    def fingerprint(self, first: int, last: int) -> bytes:
        """The fingerprint of the items at positions ``first`` to ``last - 1``."""
        return fingerprint(*self.summary(first, last))

    def keys(self, first: int, last: int) -> list[RelKey]:
        """The items at positions ``first`` to ``last - 1`` as (relative location, hash), in order."""
        start, found = self.span.start, []
        for lo, hi in self._slices(first, last):
            for key in self._keys[lo:hi]:
                found.append(((int.from_bytes(key[:4], "big") - start) % RING, key[4:]))
        return found

    def separator(self, at: int) -> Bound:
        """The shortest bound above the item at ``at - 1`` and not above the item at ``at`` (0 < at < n)."""
        before, after = self.keys(at - 1, at + 1)
        return _separator(before, after)

    def _slices(self, first: int, last: int) -> list[tuple[int, int]]:
        """Absolute index slices of positions ``first`` to ``last - 1``."""
        (a_lo, _), (b_lo, _) = self._runs
        found = []
        if first < self._na:
            found.append((a_lo + first, a_lo + min(last, self._na)))
        if last > self._na:
            found.append((b_lo + max(first - self._na, 0), b_lo + last - self._na))
        return found


class IndexedItems:
    """Held items read live from an ``ItemIndex`` (the node's store) instead of a snapshot."""

    __slots__ = ("_index",)

    def __init__(self, index: ItemIndex) -> None:
        self._index = index

    def within(self, span: Arc) -> IndexedSpan:
        """The items on ``span``, in the span's order."""
        return IndexedSpan(self._index, span)


class IndexedSpan:
    """The items on one span, read from an ``ItemIndex`` at each call (``SpanItems``).

    The span is one or two **runs** of key order (two when it wraps past
    location 0), each a non-wrapping range the index answers; a position is
    an offset into the first run, then into the second. Every call asks the
    index afresh, so answers follow the index as it changes; a reconciliation
    reads within one synchronous call, where it does not.
    """

    __slots__ = ("_index", "_runs", "_wrap_rel", "span")

    def __init__(self, index: ItemIndex, span: Arc) -> None:
        if span.is_empty:
            raise ValueError("a span holds at least one location")
        self.span = span
        self._index = index
        start, end = span.start, span.start + span.length
        self._runs: tuple[tuple[KeyBound, KeyBound | None], ...]
        if end <= RING:
            self._runs = (((start, b""), None if end == RING else (end, b"")),)
        else:
            self._runs = (((start, b""), None), ((0, b""), (end - RING, b"")))
        self._wrap_rel = RING - start  # relative locations from here on are in the second run

    def __len__(self) -> int:
        return sum(self._counts())

    @property
    def end(self) -> Bound:
        """The bound after every item of the span."""
        return (self.span.length, b"")

    def position(self, bound: Bound) -> int:
        """How many of the span's items are below ``bound``."""
        rel, prefix = bound
        if rel >= self.span.length:
            return len(self)
        (lo, hi), *wrapped = self._runs
        if rel < self._wrap_rel:
            return self._index.held_count(lo, (self.span.start + rel, prefix))
        (second_lo, _), = wrapped
        below = self._index.held_count(second_lo, (rel - self._wrap_rel, prefix))
        return self._index.held_count(lo, hi) + below

    def summary(self, first: int, last: int) -> tuple[int, int]:
        """(sum of keys, count) of the items at positions ``first`` to ``last - 1``."""
        total = count = 0
        for (lo, hi), size, (a, b) in self._slices(first, last):
            low = lo if a == 0 else self._key_at(lo, hi, a)
            high = hi if b == size else self._key_at(lo, hi, b)
            part, number = self._index.held_summary(low, high)
            total += part
            count += number
        return total, count

    def fingerprint(self, first: int, last: int) -> bytes:
        """The fingerprint of the items at positions ``first`` to ``last - 1``."""
        return fingerprint(*self.summary(first, last))

    def keys(self, first: int, last: int) -> list[RelKey]:
        """The items at positions ``first`` to ``last - 1`` as (relative location, hash), in order."""
        start, found = self.span.start, []
        for (lo, hi), _size, (a, b) in self._slices(first, last):
            for loc, digest in self._index.held_keys(lo, hi, a, b - a):
                found.append(((loc - start) % RING, digest))
        return found

    def separator(self, at: int) -> Bound:
        """The shortest bound above the item at ``at - 1`` and not above the item at ``at`` (0 < at < n)."""
        before, after = self.keys(at - 1, at + 1)
        return _separator(before, after)

    def _counts(self) -> list[int]:
        return [self._index.held_count(lo, hi) for lo, hi in self._runs]

    def _key_at(self, lo: KeyBound, hi: KeyBound | None, offset: int) -> KeyBound:
        """The key of the ``offset``-th item of a run, as the bound just at it."""
        ((loc, digest),) = self._index.held_keys(lo, hi, offset, 1)
        return (loc, digest)

    def _slices(
        self, first: int, last: int
    ) -> list[tuple[tuple[KeyBound, KeyBound | None], int, tuple[int, int]]]:
        """Each run that positions ``first`` to ``last - 1`` touch: the run, its size, offsets in it."""
        found = []
        at = 0
        for run, size in zip(self._runs, self._counts(), strict=True):
            a, b = max(first - at, 0), min(last - at, size)
            if a < b:
                found.append((run, size, (a, b)))
            at += size
        return found
