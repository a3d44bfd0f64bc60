"""Gossip on a node: heads and warrants swapped with a random peer, and what it holds further on pulled.

Every few seconds (``gossip_interval``, jittered) the node sends a random
peer its chain heads and the hashes of its warrants; the peer answers with
its own heads and the warrants the asker lacks, and pulls (in the
background) what the asker holds further on; the asker pulls what the peer
holds further on. This repairs whatever publishing missed: downtime,
partitions, late joiners. News is passed on at once (rumour mongering), so
a healed partition converges in a few rounds instead of a few intervals.
Warrants that arrive (here, or on the ``warrant`` protocol) are checked
against their evidence, the evidence's chains pulled if they are not held.
"""

from __future__ import annotations

import logging
import random

import trio

from conode.dht import gossip
from conode.dht.messages import Empty, Heads, HeadsReply, HeadsRequest, WarrantRequest
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import EncodingError, RemoteProtocolError
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.pulls import Pulls
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
        *,
        interval: float,
        rng: random.Random,
    ) -> None:
        self.store = store
        self.engine = engine
        self.client = client
        self.pulls = pulls
        self.warrants = warrants
        self.interval = interval
        self.rng = rng
        self._now = trio.Event()

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
            if peers:
                await self.gossip_with(self.rng.choice(peers))

    def heads(self) -> Heads:
        """Every held chain's head."""
        return {h.author: (h.seq, h.hash.raw) for h in self.store.heads()}

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
            await self.pulls.pull_from(peer, gossip.ahead(theirs, self.heads()))

    async def _on_heads(self, peer: PeerId, request: HeadsRequest) -> HeadsReply:
        ours = self.heads()
        behind = gossip.behind(request.heads, ours)
        if behind:
            self.client.spawn(self.pulls.pull_from, peer, behind)
        known = set(request.warrants)
        missing = [w for h, _o, w in self.store.warrants() if h not in known][:_MAX_WARRANTS_SENT]
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
