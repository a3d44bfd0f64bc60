"""Reconciliation on a node: its arc kept in step with its neighbours', governance with everyone.

How it works (the sessions are ``conode.dht.reconcile``'s, over the store's
held-ops index, ``conode.store.heldops``; the protocol is
``docs/protocol.md`` section 11):

- **Arcs.** Every ``reconcile_interval`` (jittered by half) the node
  reconciles the overlap of its arc with each neighbour (the peers whose
  arcs overlap its own: R - 1 on each side, and full-arc nodes), one session
  per overlap piece, and fetches what it lacks (``need``) from that peer; the
  peer, which learned the same, fetches what it lacks from this node. A
  neighbour not met before (a joiner, or one back after a partition) is
  reconciled with at once. Equal
  pieces cost ~31 bytes a session, a difference what it is and the log of
  what they hold.
- **Growth.** When this node's arc grows (it was just placed, or a holder
  left), the pieces it grew by are reconciled at once with the peers that
  hold them: a joining node takes its arc over from its neighbours.
- **Shedding.** A chain this node holds but neither hosts nor has on its arc
  (the arc shrank, or the node held everything before this version) is
  dropped only after each of its R ordinary authorities has shown, in a
  session over the chain's location, that it holds every op this node holds
  there (a session that finds it lacking also lets it fetch what it lacks);
  a link held at a base that left the arc is let go the same way. A chain
  held on purpose waits until its hold ends (``conode.dht.shedding``: an
  audit's a dependency's keep, a witness's a payment session), and a round
  goes on in ring order from where the last stopped. A dropped chain's
  governance records stay, loose for every judge (``Loose.GLOBAL``).
- **Governance** (``GOVERNANCE_TYPES``): every interval a session over the
  governance records with one random peer, and a governance record new here
  is reconciled at once with the neighbours, so it spreads through the ring
  as gossip did.
- **Dependencies** held loose are forgotten ``dependency_keep_us`` after
  they were last kept.

As a responder the node takes a session whose span lies on its arc (or the
governance set), at most ``MAX_SESSIONS_PER_PEER`` open per peer, each
forgotten ``SESSION_IDLE_S`` after its last message; a session's ``need`` is
fetched from the initiator once the session ends.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import trio

from conode.chain import Record
from conode.chain.ops import op_locations
from conode.dht.arcs import Arc, hash_location
from conode.dht.itemset import HeldItems, IndexedItems, Item, ItemSource
from conode.dht.messages import SESSION_ID_SIZE, ReconcileReply, ReconcileRequest
from conode.dht.reconcile import Reconciler, opening_span
from conode.dht.shedding import due
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import ConodeError, RemoteProtocolError, StorageError
from conode.hashes import AgentKey
from conode.node.ingest import Ingest
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.pulls import Pulls
from conode.node.ring import Placement
from conode.store import Loose, NodeStore
from conode.validation.governance import GOVERNANCE_TYPES

__all__ = ["FOLLOW_UPS", "FOLLOW_UP_S", "MAX_SESSIONS_PER_PEER", "SESSION_IDLE_S", "Reconciliation"]

log = logging.getLogger("conode.node")

MAX_SESSIONS_PER_PEER: Final = 4
SESSION_IDLE_S: Final = 30.0
FOLLOW_UP_S: Final = 1.0
"""Seconds to the next round after the arc grew or a neighbour was met (a heal, a join), and
after a follow-up round that fetched something: the neighbours took things in meanwhile."""
FOLLOW_UPS: Final = 4
"""Follow-up rounds at most after one such change, however much they fetch."""
_SHED_PER_ROUND: Final = 32
"""Locations a round checks for shedding (an upgrading node works through its chains in rounds)."""


@dataclass(slots=True)
class _Open:
    """A session this node answers: its side, and when it last heard from the initiator."""

    side: Reconciler
    heard: float
    globals: bool


@dataclass(slots=True)
class Tally:
    """What this node's reconciliations did (for status and benchmarks)."""

    sessions: int = 0
    bytes_sent: int = 0
    fetched: int = 0
    shed_chains: int = 0
    refused: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Reconciliation:
    """This node's side of range reconciliation: sessions it starts and answers (see the module
    docstring)."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        pulls: Pulls,
        client: PeerClient,
        placement: Placement,
        clock: Callable[[], int],
        *,
        interval: float,
        dependency_keep_us: int,
        rng: random.Random,
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.pulls = pulls
        self.client = client
        self.placement = placement
        self.clock = clock
        self.interval = interval
        self.dependency_keep_us = dependency_keep_us
        self.rng = rng
        self.tally = Tally()
        self._open: dict[tuple[PeerId, bytes], _Open] = {}
        self._grown: list[Arc] = []
        self._news: list[Record] = []
        self._met: set[PeerId] = set()
        self._shrunk = False
        self._shed_after = 0  # the location shedding last looked at: the next round goes on from it
        self._wake = trio.Event()
        placement.on_arc.append(self._arc_changed)
        placement.on_ring.append(self.soon)
        ingest.on_global.append(self._governance_stored)

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``reconcile`` (none on a node of an earlier version)."""
        if self.placement.legacy:
            return {}
        return {ReconcileRequest.protocol: serve(ReconcileRequest.decode, self._on_reconcile)}

    def soon(self) -> None:
        """Reconcile again at once."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile the arc and governance every interval, grown pieces and news at once."""
        task_status.started()
        if self.placement.legacy:
            return
        due = trio.current_time()
        follow_ups = 0
        fetched = self.tally.fetched  # since the last turn: what answering sessions fetched counts
        while True:
            with trio.move_on_at(due):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                grown, self._grown = self._grown, []
                news, self._news = self._news, []
                shrunk, self._shrunk = self._shrunk, False
                if grown:
                    await self._take_over(grown)
                met = await self._meet_new_neighbours()
                if news:
                    await self._spread(news)
                handing = False
                if trio.current_time() >= due:
                    handing = await self.round()
                    due = trio.current_time() + self.interval * self.rng.uniform(0.5, 1.5)
                    follow_ups = max(follow_ups - 1, 0)
                moving = grown or met or shrunk
                if moving or (follow_ups and (self.tally.fetched > fetched or handing)):
                    # the arc's contents are moving (a heal, a join): what a neighbour took
                    # in after its session with this node, and what this node holds off its
                    # arc that its holders lack, are reconciled a round later, not an
                    # interval later
                    follow_ups = FOLLOW_UPS if moving else follow_ups
                    due = min(due, trio.current_time() + FOLLOW_UP_S)
                fetched = self.tally.fetched
            except StorageError:
                raise  # a full disk: the node runs this loop again later (``conode.node.full_disk``)
            except ConodeError as exc:
                log.warning("reconciling: %s", exc)

    async def round(self) -> bool:
        """One round: the arc with a neighbour on each side, governance with a random peer,
        shedding, and forgetting old dependencies. True if it is still handing chains off its
        arc to their holders (``shed``)."""
        for peer in self._partners():
            await self.reconcile_with(peer)
        known = [PeerId(p) for p, _place, _age in self.placement.view.known(self.clock())]
        placed = [p for p in known if self.placement.view.arc_of(p) != Arc.empty()]
        if placed:
            await self.reconcile_globals(self.rng.choice(placed))
        handing = await self.shed()
        self.store.evict_loose(self.clock() - self.dependency_keep_us)
        return handing

    def _partners(self) -> list[PeerId]:
        """Every neighbour: a session over an equal piece costs ~31 bytes, and with all of them
        a record one of them lacks reaches it in one round."""
        return self.placement.neighbours()

    # -- sessions this node starts ----------------------------------------------------------------

    async def reconcile_with(self, peer: PeerId, pieces: Iterable[Arc] | None = None) -> None:
        """Reconcile each piece of the overlap of this node's arc and ``peer``'s (or the given
        pieces, within it) and fetch what this node lacks."""
        overlap = self.placement.view.overlap(peer)
        if pieces is not None:
            overlap = tuple(part for piece in pieces for o in overlap for part in o.overlap(piece))
        for piece in overlap:
            side = await self._session(peer, IndexedItems(self.store), piece, globals=False)
            if side is not None and side.need:
                await self._fetch(peer, side, globals=False)

    async def reconcile_globals(self, peer: PeerId) -> None:
        """Reconcile the governance records with ``peer`` and fetch what this node lacks."""
        side = await self._session(peer, self._governance(), Arc.full(), globals=True)
        if side is not None and side.need:
            await self._fetch(peer, side, globals=True)

    async def _session(self, peer: PeerId, items: ItemSource, span: Arc, *, globals: bool) -> Reconciler | None:
        """One whole session with ``peer`` over ``span``; this node's side, or None if it failed."""
        session = self.rng.randbytes(SESSION_ID_SIZE)
        kind = "global" if globals else "arc"
        with tolerate("reconciling with %s", peer):
            side, opening = Reconciler.initiate(items, span)
            message: bytes | None = opening
            while message is not None:
                reply = await self.client.ask(peer, ReconcileRequest(session, message, globals))
                if reply.message is None:
                    break
                message = side.receive(reply.message)
            self.tally.sessions += 1
            self.tally.bytes_sent += side.bytes_sent
            self.tally.by_kind[kind] = self.tally.by_kind.get(kind, 0) + 1
            return side
        return None

    async def _fetch(self, peer: PeerId, side: Reconciler, *, globals: bool) -> None:
        """Take in what a session showed ``peer`` holds and this node lacks (on its arc)."""
        arc = self.placement.arc()
        wanted = sorted({item.hash for item in side.need if globals or arc.contains(item.loc)})
        if not wanted:
            return
        self.tally.fetched += len(wanted)
        with tolerate("fetching %d records from %s", len(wanted), peer):
            if globals:
                await self.pulls.pull_globals(peer, wanted)
            else:
                await self.pulls.pull_records(peer, wanted)

    async def _fetch_after(self, peer: PeerId, held: _Open) -> None:
        await self._fetch(peer, held.side, globals=held.globals)

    # -- sessions this node answers ---------------------------------------------------------------

    async def _on_reconcile(self, peer: PeerId, request: ReconcileRequest) -> ReconcileReply:
        now = trio.current_time()
        self._open = {k: s for k, s in self._open.items() if now - s.heard < SESSION_IDLE_S}
        key = (peer, request.session)
        held = self._open.pop(key, None)
        if held is None:
            if sum(1 for p, _ in self._open if p == peer) >= MAX_SESSIONS_PER_PEER:
                raise RemoteProtocolError(f"more than {MAX_SESSIONS_PER_PEER} open sessions")
            items = self._items_for(request)
            side, reply = Reconciler.accept(items, request.message)
            held = _Open(side, now, request.globals)
        else:
            reply = held.side.receive(request.message)
            held.heard = now
        if held.side.done:
            if held.side.need:
                self.client.spawn(self._fetch_after, peer, held)
        else:
            self._open[key] = held
        return ReconcileReply(reply)

    def _items_for(self, request: ReconcileRequest) -> ItemSource:
        """What a new session reads: the governance records, or the store's ops. A span partly
        off this node's arc (the two views of the ring differ a little) is answered with what is
        held there; only what lies on the arc is fetched after (``_fetch``)."""
        if request.globals:
            return self._governance()
        opening_span(request.message)  # a malformed opening is refused here
        return IndexedItems(self.store)

    def _governance(self) -> HeldItems:
        """The governance records this node holds (in chains or loose), as items at their hash."""
        found = [r.hash for t in GOVERNANCE_TYPES for r in self.store.records_of_type(t)]
        return HeldItems(Item(hash_location(h), h) for h in found)

    # -- the arc changing -------------------------------------------------------------------------

    def _arc_changed(self, old: Arc, new: Arc) -> None:
        grown = new.minus(old)
        if grown:
            self._grown += grown
            self.soon()
        if old.minus(new):  # what it held there goes back to its holders: a round soon sheds it
            self._shrunk = True
            self.soon()

    async def _take_over(self, pieces: list[Arc]) -> None:
        """Reconcile the pieces this node's arc grew by with the peers that hold them."""
        for peer in self.placement.neighbours():
            mine = [part for piece in pieces for part in piece.overlap(self.placement.view.arc_of(peer))]
            if mine:
                await self.reconcile_with(peer, mine)

    async def _meet_new_neighbours(self) -> bool:
        """Reconcile at once with a neighbour not reconciled with since it became one (a node
        that joined, or came back after a partition): what either made meanwhile moves now.
        True if there was one."""
        neighbours = set(self.placement.neighbours())
        new, self._met = neighbours - self._met, neighbours
        for peer in sorted(new):
            await self.reconcile_with(peer)
        return bool(new)

    def _governance_stored(self, record: Record) -> None:
        self._news.append(record)
        self.soon()

    async def _spread(self, news: list[Record]) -> None:
        """Pass new governance records on: a governance session with each neighbour."""
        for peer in self.placement.neighbours():
            await self.reconcile_globals(peer)

    # -- shedding ---------------------------------------------------------------------------------

    async def shed(self) -> bool:
        """Drop the chains (and let go the links) this node holds off its arc, a few locations a
        round (``conode.dht.shedding.due``), once every ordinary authority of each location has
        shown it holds them (an authority that lacks some fetches them after the session that
        showed it). True if some location is not held so yet: records are being handed over."""
        if self.placement.full_arc or not self.placement.placed:
            return False
        arc = self.placement.arc()
        if arc.is_full:
            return False
        chains = due(
            self.store.authors(), arc=arc, hosted=self.ingest.agents,
            held_until=self.ingest.held_for_now, now=self.clock(),
            after=self._shed_after, limit=_SHED_PER_ROUND,
        )  # fmt: skip
        handing = False
        for loc, authors in chains:
            self._shed_after = loc
            if await self._held_elsewhere(loc):
                for author in authors:
                    self.tally.shed_chains += 1
                    self.ingest.held_for_now.pop(author, None)
                    self._forget(author)
            else:
                handing = True
        links = [r for r in self.store.loose_records(Loose.LINK) if not self._on_arc_link(r, arc)]
        if links:
            self.store.release_loose(r.hash for r in links)
        return handing

    def _forget(self, author: AgentKey) -> None:
        """Drop a chain off the arc, its governance records kept loose for every judge
        (``Loose.GLOBAL``: governance reaches every node whichever chains it holds, and a
        proposal shown here a moment ago is not gone until a governance session brings it back)
        and its bills to agents hosted here kept for them (``Loose.ADDRESSED``)."""
        self.store.forget_chain(author, keep=self._kept_when_shed, now=self.clock())

    def _kept_when_shed(self, record: Record) -> Loose | None:
        if record.action.entry_type in GOVERNANCE_TYPES:
            return Loose.GLOBAL
        return Loose.ADDRESSED if self.ingest.addressed_here(record) else None

    def _on_arc_link(self, record: Record, arc: Arc) -> bool:
        return any(arc.contains(loc) for loc in op_locations(record)[1:])

    async def _held_elsewhere(self, loc: int) -> bool:
        """True if each of the R ordinary authorities of ``loc`` holds every op held here there."""
        ring = self.placement.view.ring()
        ordinary = {h.peer for h in ring.ordinary}
        holders = [p for p in self.placement.authorities(loc) if p in ordinary]
        if not holders:
            return False
        span = Arc(loc, 1)
        for peer in holders:
            side = await self._session(peer, IndexedItems(self.store), span, globals=False)
            if side is None or side.have:
                return False
        return True
