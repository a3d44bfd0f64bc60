"""Gossip on a node: warrants swapped with a random peer, and heads with peers of an earlier version.

Every few seconds (``gossip_interval``, jittered) the node picks a random
connected peer. With a peer of an earlier version (one that announced no
place on the ring: it holds every chain and does not reconcile) it swaps
chain heads and the hashes of its warrants, as every node did before
sharding: the peer answers with its own heads and the warrants the asker
lacks, and each pulls what the other holds further on, of the chains it
holds. With a placed peer (the chains are reconciliation's,
``conode.node.reconcile``) it swaps warrant hashes only, at most once a
``reconcile_interval``: warrants also spread at once on the ``warrant``
protocol, and this repairs what that missed. News is passed on at once
(rumour mongering). A peer not greeted yet counts as placed (its hello will
say). Warrants that arrive are checked against their evidence, the
evidence's chains pulled if they are not held.
"""

from __future__ import annotations

import logging
import random

import trio

from conode.dht import gossip
from conode.dht.messages import Empty, Heads, HeadsReply, HeadsRequest, WarrantRequest
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import AgentKey
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.pulls import Pulls
from conode.node.ring import Placement
from conode.node.warrants import Warrants
from conode.store import NodeStore
from conode.validation.engine import Engine
from conode.validation.verdict import Missing, Valid
from conode.validation.warrants import Warrant, check_warrant

__all__ = ["Gossip"]

log = logging.getLogger("conode.node")

_MAX_WARRANTS_SENT = 100  # warrants one heads reply carries at most


class Gossip:
    """Head gossip with random peers, and the warrants that come with it."""

    def __init__(
        self,
        store: NodeStore,
        engine: Engine,
        client: PeerClient,
        pulls: Pulls,
        warrants: Warrants,
        placement: Placement,
        *,
        interval: float,
        warrants_interval: float,
        rng: random.Random,
    ) -> None:
        self.store = store
        self.engine = engine
        self.client = client
        self.pulls = pulls
        self.warrants = warrants
        self.placement = placement
        self.interval = interval
        self.warrants_interval = warrants_interval
        """Seconds between two warrant swaps with placed peers."""
        self.rng = rng
        self._now = trio.Event()
        self._swapped = -float("inf")

    def handlers(self) -> dict[str, Handler]:
        """The protocols it answers: ``heads`` and ``warrant``."""
        return {
            HeadsRequest.protocol: serve(HeadsRequest.decode, self._on_heads),
            WarrantRequest.protocol: serve(WarrantRequest.decode, self._on_warrant),
        }

    def soon(self) -> None:
        """Gossip again at once: something new came in."""
        self._now.set()

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Gossip with a random peer every interval, and at once again after hearing news."""
        task_status.started()
        while True:
            with trio.move_on_after(self.interval * self.rng.uniform(0.5, 1.5)):
                await self._now.wait()
            self._now = trio.Event()
            peers = self.client.peers()
            if not peers:
                continue
            peer = self.rng.choice(peers)
            place = self.placement.view.place_of(peer)
            if (place is not None and place.legacy) or self.placement.legacy:
                await self.gossip_with(peer)
            elif trio.current_time() - self._swapped >= self.warrants_interval:
                self._swapped = trio.current_time()
                await self.swap_warrants(peer)

    def heads(self) -> Heads:
        """Every held chain's head."""
        return {h.author: (h.seq, h.hash.raw) for h in self.store.heads()}

    async def swap_warrants(self, peer: PeerId) -> None:
        """Swap warrant hashes (no heads) with ``peer`` and take in the warrants it has."""
        held = tuple(h for h, _o, _w in self.store.warrants())
        with tolerate("swapping warrants with %s", peer):
            reply = await self.client.ask(peer, HeadsRequest({}, held, warrants_only=True))
            for data in reply.warrants:
                await self.receive_warrant(data, peer)

    def heads_digest(self) -> str:
        """A digest of every held chain head and warrant: equal on nodes that have converged."""
        warrants = [(h, offender) for h, offender, _w in self.store.warrants()]
        return gossip.heads_digest(self.store.heads(), warrants)

    async def gossip_with(self, peer: PeerId) -> None:
        """Swap heads and warrants with ``peer`` and pull what it holds further on."""
        held = tuple(h for h, _o, _w in self.store.warrants())
        theirs: Heads | None = None
        with tolerate("gossip with %s", peer):
            reply = await self.client.ask(peer, HeadsRequest(self.heads(), held))
            for data in reply.warrants:
                await self.receive_warrant(data, peer)
            theirs = reply.heads
        if theirs is not None:
            ahead = gossip.ahead(theirs, self.heads())
            await self.pulls.pull_from(peer, [a for a in ahead if self.ingest_holds(a)])

    def ingest_holds(self, agent: AgentKey) -> bool:
        """True if this node holds ``agent``'s chain (so it pulls it through heads gossip)."""
        return self.pulls.ingest.holds(agent)

    async def _on_heads(self, peer: PeerId, request: HeadsRequest) -> HeadsReply:
        known = set(request.warrants)
        missing = [w for h, _o, w in self.store.warrants() if h not in known][:_MAX_WARRANTS_SENT]
        if request.warrants_only:
            return HeadsReply({}, tuple(missing))
        ours = self.heads()
        behind = [a for a in gossip.behind(request.heads, ours) if self.ingest_holds(a)]
        if behind:
            self.client.spawn(self.pulls.pull_from, peer, behind)
        return HeadsReply(ours, tuple(missing))

    async def _on_warrant(self, peer: PeerId, request: WarrantRequest) -> Empty:
        await self.receive_warrant(request.warrant, peer)
        return Empty()

    async def receive_warrant(self, data: bytes, peer: PeerId) -> None:
        """Check a warrant a peer passed on (pulling the evidence's chains from it if they are
        not held) and keep it if it proves the offence; ``RemoteProtocolError`` if malformed."""
        try:
            warrant = Warrant.from_bytes(data)
        except EncodingError as exc:
            raise RemoteProtocolError(f"a bad warrant: {exc}") from exc
        verdict = check_warrant(warrant, self.engine, self.store)
        if isinstance(verdict, Missing) and warrant.evidence:
            for record in warrant.evidence:
                head = self.store.head(record.action.author)
                if head is None:
                    await self.pulls.pull_chain(peer, record.action.author, 0)
            verdict = check_warrant(warrant, self.engine, self.store)
        if isinstance(verdict, Valid):
            self.warrants.keep(warrant)
        else:
            log.warning("refused a warrant from %s: %s", peer, verdict)
