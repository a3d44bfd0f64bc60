"""Where this node stands on the location ring, what it sees of the others, and so what it holds.

A thin shell over ``conode.dht.ringview.RingView`` (pure) with this node's
choices and memory:

- **Placement.** A node keeps one location for life (``meta`` key
  ``dht_location``, 4 bytes). A new node chooses it once it has heard of a
  placed peer, or after ``PLACEMENT_WAIT_S`` seconds alone: the candidate
  of its peer id in the largest gap between the places it knows
  (``arcs.choose_location``). Until then it holds no share (it hosts its
  agents' chains only). An operator's full-arc node (``full_arc``) holds
  everything and takes no location.
- **What it holds** (``holds_chain``): the chains of the agents it hosts,
  and of every agent whose location is on its arc; everything if full-arc.
- **Changes.** When its arc changes (a peer came, went or was forgotten),
  every listener in ``on_arc`` is told the old and the new arc, at once and
  under no lock: the reconciliation service fetches what the arc grew by.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

from conode.chain.ops import location
from conode.dht.arcs import Arc, choose_location, is_candidate
from conode.dht.ringview import LEGACY, Place, RingView
from conode.dht.transport import PeerId
from conode.hashes import AgentKey
from conode.node.settings import HostedAgent
from conode.store import NodeStore

__all__ = ["LOCATION_KEY", "PLACEMENT_WAIT_S", "Placement"]

log = logging.getLogger("conode.node")

LOCATION_KEY: Final = "dht_location"
"""The ``meta`` key of this node's location (4 bytes, big-endian), kept once chosen."""
PLACEMENT_WAIT_S: Final = 3.0
"""Seconds a new node waits to hear of placed peers (its bootstrap peers' hellos) before it
places itself alone (the first node of a network)."""


class Placement:
    """This node's place on the ring and its view of the others' (see the module docstring)."""

    def __init__(
        self,
        store: NodeStore,
        peer_id: PeerId,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        *,
        replication: int,
        full_arc: bool,
        expiry_us: int,
        legacy: bool = False,
    ) -> None:
        self.store = store
        self.peer_id = peer_id
        self.agents = agents
        self.clock = clock
        self.view = RingView(peer_id, replication, expiry_us=expiry_us)
        self.on_arc: list[Callable[[Arc, Arc], None]] = []
        """Told (old arc, new arc) whenever this node's arc changes."""
        self.full_arc = full_arc or legacy
        self.legacy = legacy
        if legacy:
            self.view.place_self(LEGACY)  # an earlier version: no place said, everything held
        elif full_arc:
            self.view.place_self(Place(None, full=True))
        else:
            kept = store.get_meta(LOCATION_KEY)
            if kept is not None and len(kept) == 4 and is_candidate(peer_id, int.from_bytes(kept, "big")):
                self.view.place_self(Place(int.from_bytes(kept, "big")))
        self._arc = self.view.arc()

    # -- this node's place -----------------------------------------------------------------------

    @property
    def place(self) -> Place:
        """Where this node says it stands (``Place(None)``: not placed yet)."""
        return self.view.own

    @property
    def placed(self) -> bool:
        own = self.view.own
        return own.full or own.legacy or own.loc is not None

    def choose(self) -> None:
        """Take a location now (if this node has none): the best candidate for the places it knows."""
        if self.placed:
            return
        seen = [
            holder.loc
            for peer, place, _age in self.view.known(self.clock())
            if (holder := place.holder(peer)) is not None and not holder.full
        ]
        loc = choose_location(self.peer_id, seen)
        self.store.set_meta(LOCATION_KEY, loc.to_bytes(4, "big"))
        self.view.place_self(Place(loc))
        log.info("placed at %08x among %d known places", loc, len(seen))
        self._changed()

    def knows_a_placed_peer(self) -> bool:
        """True if some peer on the ring is heard of (a new node may place itself now)."""
        ring = self.view.ring()
        return any(h.peer != self.peer_id for h in (*ring.ordinary, *ring.full))

    # -- others' places ----------------------------------------------------------------------------

    def hear(self, peer: PeerId, place: Place, age_us: int = 0) -> None:
        """Note where ``peer`` stands (heard ``age_us`` ago)."""
        if self.view.hear(peer, place, self.clock(), age_us):
            self._changed()

    def forget(self, peer: PeerId) -> None:
        """``peer`` does not answer: it holds nothing until it is heard of again."""
        if self.view.forget(peer, self.clock()):
            log.info("%s is gone: the ring closes over its share", peer)
            self._changed()

    def expire(self) -> None:
        """Drop the places not heard of for a long while."""
        if self.view.expire(self.clock()):
            self._changed()

    def _changed(self) -> None:
        old, new = self._arc, self.view.arc()
        if old != new:
            self._arc = new
            for listener in self.on_arc:
                listener(old, new)

    # -- what follows -------------------------------------------------------------------------------

    def arc(self) -> Arc:
        """The locations this node holds."""
        return self._arc

    def holds_location(self, loc: int) -> bool:
        return self._arc.contains(loc)

    def holds_chain(self, agent: AgentKey) -> bool:
        """True if this node holds ``agent``'s whole chain: it hosts it, or it is on its arc."""
        return agent in self.agents or self._arc.contains(location(agent.raw))

    def authorities(self, loc: int) -> list[PeerId]:
        """The holders of ``loc`` other than this node, nearest first (R ordinary, then full-arc)."""
        return [PeerId(p) for p in self.view.authorities(loc) if p != self.peer_id]

    def authorities_of(self, agent: AgentKey) -> list[PeerId]:
        """The holders of ``agent``'s chain (its activity authorities) other than this node."""
        return self.authorities(location(agent.raw))

    def neighbours(self) -> list[PeerId]:
        """The peers whose arcs overlap this node's, nearest first."""
        return [PeerId(p) for p in self.view.neighbours()]
