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
- **Finding holders.** A node knows its own neighbourhood well (it greets
  its neighbours) but only samples of the rest of the ring, so before it
  sends a location's records to its authorities (or asks them for something)
  it asks the node it knows nearest the location who holds it (``places``),
  up to ``LOOKUP_HOPS`` times, each answer from nearer the location, and
  remembers that it did (``LOOKUP_FRESH_US``): a record never goes to a peer
  that does not hold its location only because this node knew too little.
- **Changes.** When its arc changes (a peer came, went or was forgotten),
  every listener in ``on_arc`` is told the old and the new arc, at once and
  under no lock: the reconciliation service fetches what the arc grew by.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

import trio

from conode.chain.ops import location
from conode.dht.arcs import Arc, choose_location, is_candidate
from conode.dht.messages import PlacesReply, PlacesRequest
from conode.dht.ringview import LEGACY, Place, RingView
from conode.dht.transport import Handler, PeerId
from conode.hashes import AgentKey
from conode.node.peer_client import PeerClient, serve
from conode.node.settings import HostedAgent
from conode.store import NodeStore

__all__ = ["LOCATION_KEY", "LOOKUP_FRESH_US", "LOOKUP_HOPS", "PLACEMENT_WAIT_S", "Placement"]

log = logging.getLogger("conode.node")

LOCATION_KEY: Final = "dht_location"
"""The ``meta`` key of this node's location (4 bytes, big-endian), kept once chosen."""
LOOKUP_HOPS: Final = 3
"""Nodes asked in turn, each nearer the location, when looking up who holds a location."""
LOOKUP_BUDGET_S: Final = 1.5
"""Seconds a lookup may take in all (hops that do not answer are skipped)."""
LOOKUP_FRESH_US: Final = 300_000_000
"""A sector of the ring looked up less than this long ago is not looked up again."""
_SECTOR_BITS: Final = 20
PLACEMENT_WAIT_S: Final = 3.0
"""Seconds a new node waits to hear of placed peers (its bootstrap peers' hellos) before it
places itself alone (the first node of a network)."""


class Placement:
    """This node's place on the ring and its view of the others' (see the module docstring)."""

    def __init__(
        self,
        store: NodeStore,
        client: PeerClient,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        *,
        replication: int,
        full_arc: bool,
        expiry_us: int,
        legacy: bool = False,
    ) -> None:
        self.store = store
        self.client = client
        self.peer_id = peer_id = client.transport.peer_id
        self.agents = agents
        self._looked: dict[int, int] = {}  # sector -> when it was last looked up
        client.on_unreachable.append(self.forget)
        self.clock = clock
        self.view = RingView(peer_id, replication, expiry_us=expiry_us)
        self.on_arc: list[Callable[[Arc, Arc], None]] = []
        """Told (old arc, new arc) whenever this node's arc changes."""
        self.on_ring: list[Callable[[], None]] = []
        """Told whenever the ring this node sees changes (a holder came, went or moved)."""
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

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``places``."""
        return {PlacesRequest.protocol: serve(PlacesRequest.decode, self._on_places)}

    async def _on_places(self, peer: PeerId, request: PlacesRequest) -> PlacesReply:
        around = self.view.around(request.loc, self.clock())
        return PlacesReply(tuple((PeerId(p), place, age) for p, place, age in around))

    async def locate(self, loc: int) -> None:
        """Learn who holds ``loc`` from the nodes nearest it (unless looked up lately); hedged
        (a node that does not answer costs ``HEDGE_S``, and is forgotten), and within
        ``LOOKUP_BUDGET_S`` in all: what is known by then is used."""
        now = self.clock()
        sector = loc >> _SECTOR_BITS
        if now - self._looked.get(sector, -LOOKUP_FRESH_US) < LOOKUP_FRESH_US:
            return
        self._looked[sector] = now
        asked: set[PeerId] = set()
        with trio.move_on_after(LOOKUP_BUDGET_S):
            for _hop in range(LOOKUP_HOPS):
                nearest = [p for p in self.authorities(loc) if p not in asked][:2]
                if not nearest:
                    return
                asked.update(nearest)
                before = self.authorities(loc)
                answer = await self.client.hedged(nearest, PlacesRequest(loc), lambda _p, _r: True)
                if answer is None:
                    continue
                for other, place, age in answer[1].places:
                    self.hear(other, place, age)
                if self.authorities(loc) == before:
                    return  # no one nearer: this node knows the holders

    def locate_soon(self, loc: int) -> None:
        """Look ``loc`` up in the background (if not lately): what is known now is used now, and
        the next use of it is better informed (publishing, fetching dependencies)."""
        if self.clock() - self._looked.get(loc >> _SECTOR_BITS, -LOOKUP_FRESH_US) >= LOOKUP_FRESH_US:
            self.client.spawn(self.locate, loc)

    def doubt(self, loc: int) -> None:
        """A peer this node took for a holder of ``loc`` says it is not: look it up again."""
        self._looked.pop(loc >> _SECTOR_BITS, None)

    async def locate_agent(self, agent: AgentKey) -> None:
        """Learn who holds ``agent``'s chain (``locate``)."""
        await self.locate(location(agent.raw))

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
        self.locate_soon(loc)  # its own neighbourhood: the holders it takes its arc over from

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
        for tell in self.on_ring:
            tell()
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

    def watched(self) -> list[PeerId]:
        """The peers whose leaving moves this node's arc (``RingView.watched``): greeted in turn."""
        return [PeerId(p) for p in self.view.watched()]
