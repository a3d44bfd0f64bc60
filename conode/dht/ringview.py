"""What a node knows of the ring: where its peers sit, and what follows from that (pure).

How it works (time is passed in, as the node's clock in µs):

- A node hears of peers' **places** in hellos: from the peer itself (its
  location, or that it holds everything) or second hand, in the sample of
  places a peer passes on, each with its **age** (how long ago the teller
  last heard it first hand, or was told). Ages, not times, cross the wire,
  so nodes' clocks need not agree; an older report never replaces a newer.
- Who stands where (``Place.holder``): a peer that announced a location is
  an ordinary holder there, if the location is one of its candidates
  (``arcs.location_candidates``; any other is ignored); one that announced
  ``full`` is a full-arc holder; one that announced nothing at all (a node
  of an earlier version, which holds everything) is a full-arc holder too;
  one that is not placed yet (``loc`` None, not full) is not on the ring.
- A place not heard of for ``expiry_us`` leaves the view (``expire``), as
  does a peer that failed to answer (``forget``): its successors' arcs grow
  over its share, and they fetch it from the holders that stay. A forgotten
  peer comes back only with news heard after it was forgotten, so reports
  older than its going (other peers' samples) do not bring it back.
- The ``Ring`` (this node on it, if placed) is built once per change and
  answers this node's arc, the authorities of a location, and the
  **neighbours** whose arcs overlap this node's: the R ordinary holders on
  each side and the full-arc holders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from conode.dht.arcs import Arc, Holder, Ring, check_location, is_candidate, location_candidates

__all__ = ["LEGACY", "Place", "RingView"]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a peer said it stands: ``loc`` (None: not placed yet) and whether it holds everything.

    ``legacy``: it said nothing of its place (an earlier version, which holds everything).
    """

    loc: int | None
    full: bool = False
    legacy: bool = False

    def __post_init__(self) -> None:
        if self.loc is not None:
            check_location(self.loc)

    def holder(self, peer: str) -> Holder | None:
        """The peer as a holder on the ring, or None if it holds no share (not placed, bad place)."""
        if self.full or self.legacy:
            return Holder(location_candidates(peer, 1)[0], peer, full=True)
        if self.loc is None or not is_candidate(peer, self.loc):
            return None
        return Holder(self.loc, peer)


LEGACY: Final = Place(None, legacy=True)
"""The place of a peer that announced none: it holds everything."""


@dataclass(slots=True)
class _Heard:
    place: Place
    at: int


class RingView:
    """This node's view of the ring (see the module docstring); mutable, deterministic, no I/O."""

    def __init__(self, me: str, replication: int, *, expiry_us: int) -> None:
        if replication < 1:
            raise ValueError("replication is at least 1")
        self.me = me
        self.replication = replication
        self.expiry_us = expiry_us
        self.own = Place(None)
        self._heard: dict[str, _Heard] = {}
        self._gone: dict[str, int] = {}  # peer -> when it was forgotten
        self._ring: Ring | None = None

    # -- hearing -------------------------------------------------------------------------------

    def place_self(self, place: Place) -> None:
        """Where this node stands (its chosen location, or full)."""
        if place != self.own:
            self.own = place
            self._ring = None

    def hear(self, peer: str, place: Place, now: int, age_us: int = 0) -> bool:
        """Note ``peer``'s place as heard ``age_us`` ago; True if the ring changed."""
        if peer == self.me:
            return False
        at = now - max(age_us, 0)
        gone = self._gone.get(peer)
        if gone is not None:
            if at <= gone:
                return False  # news from before it went
            del self._gone[peer]
        known = self._heard.get(peer)
        if known is not None and known.at > at:
            return False  # an older report of a place heard of since
        changed = (None if known is None else known.place.holder(peer)) != place.holder(peer)
        self._heard[peer] = _Heard(place, at)
        if changed:
            self._ring = None
        return changed

    def forget(self, peer: str, now: int | None = None) -> bool:
        """Drop ``peer`` (it left, or does not answer); True if the ring changed.

        With ``now``, reports heard before ``now`` do not bring it back.
        """
        known = self._heard.pop(peer, None)
        if now is not None:
            self._gone[peer] = now
        if known is None:
            return False
        if known.place.holder(peer) is not None:
            self._ring = None
            return True
        return False

    def expire(self, now: int) -> list[str]:
        """Drop every peer not heard of for ``expiry_us``; the peers dropped."""
        gone = [peer for peer, heard in self._heard.items() if now - heard.at > self.expiry_us]
        for peer in gone:
            self.forget(peer)
        for peer, at in list(self._gone.items()):
            if now - at > self.expiry_us:  # older news expires anyway
                del self._gone[peer]
        return gone

    # -- reading -------------------------------------------------------------------------------

    def gone(self) -> list[str]:
        """The peers forgotten lately (failed to answer): worth greeting now and then, in case
        they are back (a healed partition)."""
        return sorted(self._gone)

    def known(self, now: int) -> list[tuple[str, Place, int]]:
        """Every peer heard of, with its place and the age of what was heard, by peer id."""
        return [(peer, h.place, now - h.at) for peer, h in sorted(self._heard.items())]

    def place_of(self, peer: str) -> Place | None:
        """The place ``peer`` was last heard at, if any."""
        heard = self._heard.get(peer)
        return None if heard is None else heard.place

    def ring(self) -> Ring:
        """The ring of every holder heard of, this node included if it is placed."""
        if self._ring is None:
            holders = [h for peer, heard in self._heard.items() if (h := heard.place.holder(peer))]
            placed = self.own.loc is not None or self.own.full or self.own.legacy
            mine = self.own.holder(self.me) if placed else None
            if mine is not None:
                holders.append(mine)
            self._ring = Ring.of(holders, self.replication)
        return self._ring

    def arc(self) -> Arc:
        """The arc this node holds: empty until it is placed, full if it holds everything."""
        if self.own.full or self.own.legacy:
            return Arc.full()
        if self.own.loc is None:
            return Arc.empty()
        return self.ring().arc(self.me)

    def arc_of(self, peer: str) -> Arc:
        """The arc ``peer`` holds, as this node sees it (empty if it is not on the ring)."""
        try:
            return self.ring().arc(peer)
        except KeyError:
            return Arc.empty()

    def authorities(self, loc: int) -> tuple[str, ...]:
        """The holders of ``loc``, nearest first: R ordinary ones, then the full-arc ones.

        This node among them if it holds ``loc``; empty while nobody is placed.
        """
        ring = self.ring()
        if not ring.ordinary and not ring.full:
            return ()
        if not ring.ordinary:
            return tuple(h.peer for h in ring.full)
        return ring.authorities(loc)

    def around(self, loc: int, now: int) -> list[tuple[str, Place, int]]:
        """What this node knows of the holders around ``loc``: the R ordinary holders at or after
        it and R before it, the full-arc holders, and itself if placed (age 0), for a peer that
        asks who holds ``loc``."""
        check_location(loc)
        ring = self.ring()
        ordinary = ring.ordinary
        chosen: list[str] = []
        if ordinary:
            count = len(ordinary)
            first = next((i for i, h in enumerate(ordinary) if h.loc >= loc), 0)
            for step in range(-self.replication, self.replication):
                peer = ordinary[(first + step) % count].peer
                if peer not in chosen:
                    chosen.append(peer)
        chosen += [h.peer for h in ring.full if h.peer not in chosen]
        found = []
        for peer in chosen:
            if peer == self.me:
                found.append((peer, self.own, 0))
            elif (heard := self._heard.get(peer)) is not None:
                found.append((peer, heard.place, now - heard.at))
        return found

    def neighbours(self) -> tuple[str, ...]:
        """The peers whose arcs overlap this node's: R ordinary holders on each side, nearest
        first (alternating sides), then the full-arc holders; none while this node holds nothing."""
        mine = self.arc()
        if mine.is_empty:
            return ()
        ring = self.ring()
        ordinary = ring.ordinary
        found: list[str] = []
        index = next((i for i, h in enumerate(ordinary) if h.peer == self.me), None)
        if index is not None:
            count = len(ordinary)
            for step in range(1, min(self.replication, count - 1) + 1):
                for other in (ordinary[(index + step) % count], ordinary[(index - step) % count]):
                    if other.peer not in found and other.peer != self.me:
                        found.append(other.peer)
        else:  # this node holds everything: every ordinary holder's arc overlaps it
            found = [h.peer for h in ordinary]
        found += [h.peer for h in ring.full if h.peer != self.me and h.peer not in found]
        return tuple(peer for peer in found if mine.overlap(self.arc_of(peer)))

    def watched(self) -> tuple[str, ...]:
        """The peers whose leaving moves this node's arc: its neighbours, then the ordinary
        holder its arc starts after (its R-th predecessor, whose own arc ends where this one
        begins: no neighbour). Greeted in turn, so that a holder gone is forgotten when it
        does not answer, not only once its place expires (``expiry_us``)."""
        found = list(self.neighbours())
        ordinary = self.ring().ordinary
        index = next((i for i, h in enumerate(ordinary) if h.peer == self.me), None)
        if index is not None and len(ordinary) > self.replication:
            bound = ordinary[index - self.replication].peer  # a negative index wraps round
            if bound != self.me and bound not in found:
                found.append(bound)
        return tuple(found)

    def overlap(self, peer: str) -> tuple[Arc, ...]:
        """The pieces of this node's arc that ``peer`` holds too."""
        return self.arc().overlap(self.arc_of(peer))

