"""Storage arcs: which part of the location ring each node holds, so every location keeps R holders.

How it works (pure: peers and their locations are arguments):

- **Locations** are 32-bit, on a ring of ``RING`` = 2**32 places. A typed
  hash's location is its first 4 raw bytes, big-endian: the top 32 bits of
  the 256-bit location ``routing`` uses, so the ring order is a coarsening
  of routing's numeric order, and the locations ``[a, b)`` are exactly the
  hashes whose raw bytes lie between ``a`` and ``b`` written as 4-byte
  prefixes: an index of held hashes sorted by their bytes is already an
  index by location. (Holochain XORs the hash's eight 4-byte words; blake2b's
  bytes are uniform already, and the prefix keeps that index property.)
- **A node sits at a location** chosen from a few candidates its peer id
  derives (``location_candidates``); candidate 0 is routing's location of
  the peer. A joining node takes the candidate that falls in the largest gap
  it sees (``choose_location``): with random places the busiest node holds
  about 3.9 times the mean share at 1 000 nodes, with 4 candidates about 2.1
  times (``bench/reconcile.py`` measures it). Anyone checks a claimed place
  against the candidates.
- **Arcs by succession.** A location is held by the first R ordinary nodes
  at or after it, clockwise (ties in location broken by peer id). So node
  ``p``'s arc runs from just after its R-th predecessor's location to its
  own: ``(loc(pred_R(p)), loc(p)]``. Every location then has exactly R
  holders whatever the peer set, while the network has more than R ordinary
  nodes; with R or fewer, every arc is full (full replication).
- **Sizing from what a node sees.** A node computes its own arc from the
  peers it knows (``storage_arc``). Missing a peer makes its arc *longer*
  (it holds more, never less); so a partial view errs on the safe side, and
  Kademlia's k-buckets know a node's own neighbourhood best. The arc grows
  when the network shrinks (predecessors leave) and shrinks when it grows.
- **Joining** between two nodes moves the joiner's arc from its R successors
  to it: only those R nodes shrink, and only by what the joiner now holds,
  so every location still has R holders and the joiner reconciles its arc
  with the nodes that held it (``Arc.overlap``).
- **Leaving**: when fewer than R nodes leave at once, every location keeps at
  least one holder among those that stay; the successors of the leavers grow
  over the leavers' share and fetch it from a holder that stayed
  (``Arc.minus`` of the new and old arc is what to fetch).
- **Full-arc nodes** (an auditor) hold every location. They are extra
  holders: they are authorities of every location but do not count among the
  R, so an auditor joining or leaving changes nobody's duty.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from conode.chain.ops import location
from conode.hashes import TypedHash

__all__ = [
    "LOCATION_CHOICES",
    "RING",
    "Arc",
    "Holder",
    "Ring",
    "check_location",
    "choose_location",
    "is_candidate",
    "hash_location",
    "location_candidates",
    "storage_arc",
]

RING: Final = 1 << 32
"""The number of locations on the ring."""

LOCATION_CHOICES: Final = 4
"""Candidate locations per peer id: the joiner takes the one in the largest gap."""


def check_location(loc: object) -> None:
    """``ValueError`` unless ``loc`` is a location: an int in [0, 2**32)."""
    if not (type(loc) is int and 0 <= loc < RING):
        raise ValueError(f"a location is in [0, 2**32), not {loc!r}")


def hash_location(h: TypedHash) -> int:
    """A typed hash's location: its first 4 raw bytes, big-endian (``conode.chain.ops.location``)."""
    return location(h.raw)


def location_candidates(peer_id: str, choices: int = LOCATION_CHOICES) -> tuple[int, ...]:
    """The locations a peer may sit at; the first is routing's location of the peer."""
    if choices < 1:
        raise ValueError("a peer needs at least one candidate location")
    found = []
    for index in range(choices):
        text = peer_id if index == 0 else f"{peer_id}/{index}"
        digest = hashlib.blake2b(text.encode(), digest_size=32).digest()
        found.append(int.from_bytes(digest[:4], "big"))
    return tuple(found)


def is_candidate(peer_id: str, loc: int) -> bool:
    """True if ``peer_id`` may sit at ``loc`` (one of its candidate locations)."""
    return loc in location_candidates(peer_id)


def choose_location(
    peer_id: str, seen: Iterable[int], choices: int = LOCATION_CHOICES
) -> int:
    """The candidate location that falls in the largest gap between the locations in ``seen``.

    Deterministic: ties go to the earlier candidate. With nothing seen, candidate 0.
    """
    ring = sorted(set(seen))
    candidates = location_candidates(peer_id, choices)
    if not ring:
        return candidates[0]

    def gap(loc: int) -> int:
        after = bisect.bisect_right(ring, loc)
        before = ring[after - 1]  # index -1 wraps to the last: the gap over zero
        nxt = ring[after % len(ring)]
        return (nxt - before) % RING or RING

    return max(candidates, key=lambda loc: (gap(loc), -candidates.index(loc)))


@dataclass(frozen=True, slots=True)
class Arc:
    """The ``length`` locations from ``start`` clockwise (wrapping past 0); 0 is empty, RING is full."""

    start: int
    length: int

    def __post_init__(self) -> None:
        if not (type(self.start) is int and 0 <= self.start < RING):
            raise ValueError(f"an arc starts at a location in [0, 2**32), not {self.start!r}")
        if not (type(self.length) is int and 0 <= self.length <= RING):
            raise ValueError(f"an arc's length is in [0, 2**32], not {self.length!r}")
        if self.length in (0, RING) and self.start != 0:
            raise ValueError("an empty or full arc starts at 0 (one form for each)")

    @classmethod
    def full(cls) -> Arc:
        """Every location."""
        return cls(0, RING)

    @classmethod
    def empty(cls) -> Arc:
        """No location."""
        return cls(0, 0)

    @classmethod
    def between(cls, after: int, upto: int) -> Arc:
        """The locations after ``after`` up to and including ``upto``: ``(after, upto]``; empty if equal."""
        length = (upto - after) % RING
        return cls((after + 1) % RING, length) if length else cls.empty()

    @property
    def is_full(self) -> bool:
        """True if the arc holds every location."""
        return self.length == RING

    @property
    def is_empty(self) -> bool:
        """True if the arc holds no location."""
        return self.length == 0

    @property
    def fraction(self) -> float:
        """The share of the ring the arc holds, in [0, 1]."""
        return self.length / RING

    def contains(self, loc: int) -> bool:
        """True if location ``loc`` is on the arc."""
        return (loc - self.start) % RING < self.length

    def overlap(self, other: Arc) -> tuple[Arc, ...]:
        """The locations on both arcs: 0, 1 or 2 disjoint arcs, in clockwise order from this arc's start."""
        if self.is_empty or other.is_empty:
            return ()
        if self.is_full:
            return (other,)
        if other.is_full:
            return (self,)
        # in coordinates relative to self.start, self is [0, self.length)
        offset = (other.start - self.start) % RING
        found = []
        for lo, hi in ((offset - RING, offset + other.length - RING), (offset, offset + other.length)):
            lo, hi = max(lo, 0), min(hi, self.length)
            if lo < hi:
                found.append(Arc((self.start + lo) % RING, hi - lo))
        return tuple(found)

    def minus(self, other: Arc) -> tuple[Arc, ...]:
        """The locations on this arc but not on ``other``: 0, 1 or 2 disjoint arcs, clockwise from this start."""
        if self.is_empty or other.is_full:
            return ()
        if other.is_empty:
            return (self,)
        if self.is_full:
            return (Arc((other.start + other.length) % RING, RING - other.length),)
        taken = sorted(((piece.start - self.start) % RING, piece.length) for piece in self.overlap(other))
        pieces, at = [], 0
        for lo, length in taken:
            if at < lo:
                pieces.append(self._piece(at, lo))
            at = lo + length
        if at < self.length:
            pieces.append(self._piece(at, self.length))
        return tuple(pieces)

    def _piece(self, lo: int, hi: int) -> Arc:
        """The part ``[lo, hi)`` of this (not full) arc, in coordinates relative to its start."""
        return Arc((self.start + lo) % RING, hi - lo)


@dataclass(frozen=True, slots=True, order=True)
class Holder:
    """A peer and its place on the ring; ``full``: it holds every location (an auditor)."""

    loc: int
    peer: str
    full: bool = False

    def __post_init__(self) -> None:
        check_location(self.loc)


@dataclass(frozen=True, slots=True)
class Ring:
    """A view of the network: each ordinary holder's arc by succession, and the authorities of a location.

    Invariant: with more than ``replication`` ordinary holders, every location
    is on exactly ``replication`` ordinary arcs; with fewer, on all of them.
    """

    replication: int
    ordinary: tuple[Holder, ...]
    """Ordinary holders in ring order (location, then peer id)."""
    full: tuple[Holder, ...]

    @classmethod
    def of(cls, holders: Iterable[Holder], replication: int) -> Ring:
        """The ring of ``holders`` (one entry per peer; a later entry for a peer replaces an earlier one)."""
        if replication < 1:
            raise ValueError("replication is at least 1")
        by_peer = {holder.peer: holder for holder in holders}
        ordinary = tuple(sorted(h for h in by_peer.values() if not h.full))
        full = tuple(sorted(h for h in by_peer.values() if h.full))
        return cls(replication, ordinary, full)

    def arc(self, peer: str) -> Arc:
        """The arc ``peer`` holds; ``KeyError`` if it is not on the ring."""
        for holder in self.full:
            if holder.peer == peer:
                return Arc.full()
        return self._arc_at(self._index(peer))

    def arcs(self) -> dict[str, Arc]:
        """Every holder's arc, by peer."""
        found = {holder.peer: Arc.full() for holder in self.full}
        for index, holder in enumerate(self.ordinary):
            found[holder.peer] = self._arc_at(index)
        return found

    def _arc_at(self, index: int) -> Arc:
        """The arc of the ordinary holder at ``index``: after its R-th predecessor, up to itself."""
        if len(self.ordinary) <= self.replication:
            return Arc.full()
        me = self.ordinary[index]
        predecessor = self.ordinary[index - self.replication]  # a negative index wraps round the ring
        if index < self.replication and predecessor.loc == me.loc:
            return Arc.full()  # all R predecessors share its location and come after it: it holds all
        return Arc.between(predecessor.loc, me.loc)

    def authorities(self, loc: int) -> tuple[str, ...]:
        """The peers holding ``loc``: the R ordinary ones at or after it (nearest first), then the full ones."""
        check_location(loc)
        count = len(self.ordinary)
        first = bisect.bisect_left(self.ordinary, (loc,), key=lambda h: (h.loc,))
        taken = min(self.replication, count)
        ordinary = tuple(self.ordinary[(first + i) % count].peer for i in range(taken))
        return ordinary + tuple(h.peer for h in self.full)

    def successors(self, peer: str) -> tuple[str, ...]:
        """The R ordinary holders after ``peer`` clockwise (fewer in a small network), nearest first.

        The first of them held all of ``peer``'s arc before ``peer`` joined (it is
        where a joiner fetches its arc from), and these are the only holders whose
        arcs ``peer`` changes by joining or leaving.
        """
        index, count = self._index(peer), len(self.ordinary)
        taken = min(self.replication, count - 1)
        return tuple(self.ordinary[(index + i) % count].peer for i in range(1, taken + 1))

    def _index(self, peer: str) -> int:
        for index, holder in enumerate(self.ordinary):
            if holder.peer == peer:
                return index
        raise KeyError(peer)


def storage_arc(me: Holder, seen: Iterable[Holder], replication: int) -> Arc:
    """The arc a node sizes for itself from the peers it sees (itself included whether or not seen lists it)."""
    if me.full:
        return Arc.full()
    return Ring.of([*seen, me], replication).arc(me.peer)
