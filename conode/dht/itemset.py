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
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

from conode.dht.arcs import RING, Arc, check_location, hash_location
from conode.hashes import ActionHash

__all__ = [
    "EMPTY_FINGERPRINT",
    "FINGERPRINT_SIZE",
    "Bound",
    "HeldItems",
    "Item",
    "RelKey",
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
        ((before_rel, before), (rel, after)) = self.keys(at - 1, at + 1)
        if before_rel != rel:
            return (rel, b"")
        same = 0
        while before[same] == after[same]:
            same += 1
        return (rel, after[: same + 1])

    def _slices(self, first: int, last: int) -> list[tuple[int, int]]:
        """Absolute index slices of positions ``first`` to ``last - 1``."""
        (a_lo, _), (b_lo, _) = self._runs
        found = []
        if first < self._na:
            found.append((a_lo + first, a_lo + min(last, self._na)))
        if last > self._na:
            found.append((b_lo + max(first - self._na, 0), b_lo + last - self._na))
        return found
